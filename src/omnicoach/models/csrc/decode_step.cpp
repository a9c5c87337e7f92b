// One decode step of a Llama-architecture model, in C++: the loop of
// LlamaDecoder.decode (models/llama_decoder.py) without Python between the ops.
//
// Why: a decode step of SmolLM2-135M is ~120 small matrix products (~8 ms, one thread)
// and, in Python, ~1,300 small elementwise ops around them (~6 ms of dispatch for vectors of
// 576 numbers). Here the products are the same ATen kernels and everything between them
// (RMSNorm, rotary embedding, the KV-cache write, attention over the cache, SiLU, the
// residual adds) is a plain loop over each row: a layer makes 4 ATen calls (its products)
// where the Python loop made ~45. The output matrix stays in Python (FBGEMM, llama_decoder.py).
//
// Numerics follow the Python forward: bfloat16 activations, RMSNorm and attention in fp32,
// each elementwise result rounded to bfloat16 where the Python ops round it. Attention runs
// in fp32 at every cache length (the Python forward switches to bfloat16 products beyond
// 512 cached tokens, where they are faster there).
//
// One Decoder serves one caller thread at a time (the batch engine's).

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// A spinning thread's pause between checks (lets the other hyperthread run on x86).
inline void spin_pause() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// bfloat16 as raw bits, converted by hand so the compiler vectorises the loops.
inline float to_float(uint16_t bits) {
  uint32_t wide = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

// Round to nearest even, as c10::BFloat16 does.
inline uint16_t to_bf16(float value) {
  if (std::isnan(value)) return 0x7fc0;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits += 0x7fff + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

#ifdef __AVX512F__
// e^x for x <= 0 (softmax scores less their maximum), 16 at a time: 2^(x·log2 e) as an
// integer power of two (scalef) times 2^f, f in [-0.5, 0.5], by Cephes' exp2f polynomial
// (relative error ~2e-7). std::exp, one at a time, was half the attention's time.
inline __m512 exp_at_most_zero(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.f));  // below, e^x is 0 in fp32 anyway
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
  for (float c : {1.339887440266574e-3f, 9.618437357674640e-3f, 5.550332471162809e-2f,
                  2.402264791363012e-1f, 6.931472028550421e-1f})
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
#endif

inline uint16_t* bits_of(const at::Tensor& t) {
  return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>());
}

// The threads of a decode step: the caller and `threads - 1` workers that spin between
// tasks, so the ~150 hand-overs of a step cost well under a microsecond each. Why not
// PyTorch's OpenMP threads: libgomp spins only ~100 times before sleeping once a process has
// more OpenMP threads than CPUs (a server has: each Python thread that ran a parallel op keeps
// its own team), and each wake-up then costs tens of microseconds; on 2 cores that made two
// threads slower than one (12 ms a step against 8). Workers sleep after SPIN_LIMIT idle,
// or at once when told the step is over (rest()).
class ThreadPool {
 public:
  static constexpr auto SPIN_LIMIT = std::chrono::microseconds(2000);

  explicit ThreadPool(int threads) : threads_(std::max(1, threads)) {
    for (int index = 1; index < threads_; ++index)
      workers_.emplace_back([this, index] { work(index); });
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  int size() const { return threads_; }

  // task(t) for t in [0, size()), the caller doing t = 0; returns when all are done and
  // rethrows the first error any of them raised.
  void run(const std::function<void(int)>& task) {
    if (threads_ == 1 || getpid() != owner_) {  // a forked child has no workers: run them all
      for (int t = 0; t < threads_; ++t) task(t);
      return;
    }
    task_ = &task;
    error_ = nullptr;
    resting_.store(false, std::memory_order_relaxed);
    pending_.store(threads_ - 1);
    generation_.fetch_add(1);
    if (sleeping_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    std::exception_ptr own_error;
    try {
      task(0);
    } catch (...) {
      own_error = std::current_exception();
    }
    while (pending_.load(std::memory_order_acquire) != 0) spin_pause();
    if (own_error) std::rethrow_exception(own_error);
    if (error_) std::rethrow_exception(error_);
  }

  // Workers sleep at once instead of spinning for SPIN_LIMIT: the step is over, and until the
  // next one the caller runs Python (the output matrix, sampling) and the server its other
  // threads, which a spinning worker would hold a core from. The next step pays one wake-up.
  void rest() { resting_.store(true, std::memory_order_relaxed); }

 private:
  void work(int index) {
    // ATen's kernels run on this thread alone: one OpenMP thread here (after ATen's own
    // per-thread initialisation, which would set it back).
    at::get_num_threads();
    omp_set_num_threads(1);
    uint64_t seen = 0;
    while (true) {
      auto idle_since = std::chrono::steady_clock::now();
      while (generation_.load(std::memory_order_acquire) == seen) {
        spin_pause();
        if (!resting_.load(std::memory_order_relaxed) &&
            std::chrono::steady_clock::now() - idle_since < SPIN_LIMIT)
          continue;
        std::unique_lock<std::mutex> lock(mutex_);
        sleeping_.fetch_add(1);
        wake_.wait(lock, [&] { return stopping_ || generation_.load() != seen; });
        sleeping_.fetch_sub(1);
        if (stopping_) return;
      }
      seen = generation_.load();
      try {
        (*task_)(index);
      } catch (...) {  // handed to the caller: an exception must not end this thread
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  const int threads_;
  const pid_t owner_ = getpid();
  std::vector<std::thread> workers_;
  std::exception_ptr error_;
  const std::function<void(int)>* task_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0}, sleeping_{0};
  std::atomic<bool> resting_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

// Runs the caller's part of a step on one OpenMP thread (the pool's threads split the work
// instead), restoring the caller's setting after.
class SingleOpenMPThread {
 public:
  SingleOpenMPThread() : saved_(at::get_num_threads()) { omp_set_num_threads(1); }
  ~SingleOpenMPThread() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

// y = x @ W.T with W packed as in models/quantize.py's PackedLinear: the packed low-bit
// kernel for few rows, the bfloat16 copy from `dense_from_rows` rows. W is split by output
// rows into one shard per thread; int4's packing interleaves blocks of up to 64 rows, so the
// shards split at multiples of 64.
struct Product {
  struct Shard {
    at::Tensor weight, scales, dense;
    int64_t begin, rows;
  };
  static constexpr int64_t ROW_BLOCK = 64;

  std::string scheme;  // "int4" or "int8"
  int64_t group;  // int4's group size
  int64_t out_features;
  std::vector<Shard> shards;

  Product(std::string scheme_, at::Tensor weight, at::Tensor scales, at::Tensor dense,
          int64_t group_)
      : scheme(std::move(scheme_)), group(group_), out_features(dense.size(0)) {
    TORCH_CHECK(scheme == "int4" || scheme == "int8", "no C++ product for scheme ", scheme);
    whole = Shard{weight, scales, dense, 0, out_features};
  }

  void split(int count) {
    shards.clear();
    const int64_t blocks = (out_features + ROW_BLOCK - 1) / ROW_BLOCK;
    int64_t begin = 0;
    for (int s = 0; s < count; ++s) {
      const int64_t end = std::min(out_features, (blocks * (s + 1) / count) * ROW_BLOCK);
      const int64_t rows = end - begin;
      // int4's scales and zeros are [groups, rows, 2]: a shard's are copied out.
      at::Tensor scales = scheme == "int4" ? whole.scales.narrow(1, begin, rows).contiguous()
                                           : whole.scales.narrow(0, begin, rows);
      shards.push_back(Shard{whole.weight.narrow(0, begin, rows), scales,
                             whole.dense.narrow(0, begin, rows), begin, rows});
      begin = end;
    }
  }

  at::Tensor compute(const Shard& shard, const at::Tensor& x, int64_t dense_from_rows) const {
    if (shard.rows == 0) return at::empty({x.size(0), 0}, x.options());
    if (x.size(0) >= dense_from_rows) return at::linear(x, shard.dense);
    if (scheme == "int8") return at::_weight_int8pack_mm(x, shard.weight, shard.scales);
    return at::_weight_int4pack_mm_for_cpu(x, shard.weight, group, shard.scales);
  }

  // x @ W.T, contiguous, each thread of POOL computing its shard into its columns.
  at::Tensor operator()(ThreadPool& pool, const at::Tensor& x, int64_t dense_from_rows) const {
    if (shards.size() == 1) return compute(shards[0], x, dense_from_rows).contiguous();
    const int64_t batch = x.size(0);
    at::Tensor y = at::empty({batch, out_features}, x.options());
    pool.run([&](int t) {
      const Shard& shard = shards[t];
      at::Tensor part = compute(shard, x, dense_from_rows).contiguous();
      for (int64_t b = 0; b < batch; ++b)
        std::memcpy(bits_of(y) + b * out_features + shard.begin, bits_of(part) + b * shard.rows,
                    shard.rows * sizeof(uint16_t));
    });
    return y;
  }

  Shard whole;
};

struct Layer {
  Product qkv, out, gate_up, down;
  at::Tensor attention_norm, mlp_norm;  // bfloat16 [hidden]
  at::Tensor keys, values;  // bfloat16 [slots, kv_heads, max_len, head_dim]
};

class Decoder {
 public:
  Decoder(std::vector<Layer> layers, at::Tensor embed, at::Tensor final_norm, at::Tensor cos,
          at::Tensor sin, int64_t heads, int64_t kv_heads, double eps, int64_t dense_from_rows,
          int64_t threads)
      : pool_(int(threads)),
        layers_(std::move(layers)),
        embed_(embed.contiguous().to(at::kFloat)),
        final_norm_(final_norm.contiguous()),
        cos_(cos.contiguous()),
        sin_(sin.contiguous()),
        heads_(heads),
        kv_heads_(kv_heads),
        head_dim_(cos.size(1)),
        hidden_(embed.size(1)),
        eps_(float(eps)),
        dense_from_rows_(dense_from_rows) {
    TORCH_CHECK(heads % kv_heads == 0, "query heads must be a multiple of key heads");
    TORCH_CHECK(head_dim_ % 2 == 0, "the rotary embedding needs an even head size");
    for (Layer& layer : layers_)
      for (Product* product : {&layer.qkv, &layer.out, &layer.gate_up, &layer.down})
        product->split(pool_.size());
  }

  // Hidden states after the final norm, bfloat16 [batch, hidden]: one new token for each
  // of several sequences, sequence b at positions[b] in KV slot slots[b].
  at::Tensor decode(const std::vector<int64_t>& slots, const std::vector<int64_t>& tokens,
                    const std::vector<int64_t>& positions) {
    const int64_t batch = int64_t(tokens.size());
    TORCH_CHECK(batch > 0 && int64_t(slots.size()) == batch && int64_t(positions.size()) == batch,
                "slots, tokens and positions need one entry per sequence");
    const int64_t max_len = layers_.front().keys.size(2);
    for (int64_t b = 0; b < batch; ++b) {
      TORCH_CHECK(positions[b] >= 0 && positions[b] < max_len, "position ", positions[b],
                  " is outside the cache of ", max_len);
      TORCH_CHECK(tokens[b] >= 0 && tokens[b] < embed_.size(0), "token ", tokens[b],
                  " is outside the vocabulary");
      TORCH_CHECK(slots[b] >= 0 && slots[b] < layers_.front().keys.size(0), "no KV slot ",
                  slots[b]);
    }
    SingleOpenMPThread single_thread;
    auto options = at::TensorOptions().dtype(at::kBFloat16);
    at::Tensor x = at::empty({batch, hidden_}, options);
    at::Tensor h = at::empty({batch, hidden_}, options);
    at::Tensor attended = at::empty({batch, heads_ * head_dim_}, options);
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = embed_.data_ptr<float>() + tokens[b] * hidden_;
      uint16_t* target = bits_of(x) + b * hidden_;
      for (int64_t i = 0; i < hidden_; ++i) target[i] = to_bf16(row[i]);
    }
    for (const Layer& layer : layers_) {
      rms_norm(x, layer.attention_norm, h);
      at::Tensor qkv = layer.qkv(pool_, h, dense_from_rows_);
      rotate_and_cache(qkv, layer, slots, positions);
      attend(qkv, layer, slots, positions, attended);
      add_in_place(x, layer.out(pool_, attended, dense_from_rows_));
      rms_norm(x, layer.mlp_norm, h);
      at::Tensor gate_up = layer.gate_up(pool_, h, dense_from_rows_);
      add_in_place(x, layer.down(pool_, silu_times(gate_up), dense_from_rows_));
    }
    rms_norm(x, final_norm_, h);
    pool_.rest();
    return h;
  }

 private:
  // out = bf16(bf16(x * rsqrt(mean(x²) + eps)) * weight), row by row.
  void rms_norm(const at::Tensor& x, const at::Tensor& weight, at::Tensor& out) const {
    const uint16_t* w = bits_of(weight);
    for (int64_t b = 0; b < x.size(0); ++b) {
      const uint16_t* in = bits_of(x) + b * hidden_;
      uint16_t* result = bits_of(out) + b * hidden_;
      float squares = 0.f;
#pragma omp simd reduction(+ : squares)
      for (int64_t i = 0; i < hidden_; ++i) squares += to_float(in[i]) * to_float(in[i]);
      const float scale = 1.f / std::sqrt(squares / float(hidden_) + eps_);
      for (int64_t i = 0; i < hidden_; ++i)
        result[i] = to_bf16(to_float(to_bf16(to_float(in[i]) * scale)) * to_float(w[i]));
    }
  }

  // Rotary embedding of the query and key heads in place (x·cos + rotate_half(x)·sin, each
  // product rounded to bfloat16 as the Python ops do), then the keys and values into the
  // sequence's KV slot at its position.
  void rotate_and_cache(at::Tensor& qkv, const Layer& layer, const std::vector<int64_t>& slots,
                        const std::vector<int64_t>& positions) const {
    const int64_t dim = head_dim_, half = head_dim_ / 2, width = qkv.size(1);
    const int64_t max_len = layer.keys.size(2);
    std::vector<uint16_t> rotated(dim);
    for (int64_t b = 0; b < int64_t(slots.size()); ++b) {
      const uint16_t* c = bits_of(cos_) + positions[b] * dim;
      const uint16_t* s = bits_of(sin_) + positions[b] * dim;
      uint16_t* row = bits_of(qkv) + b * width;
      for (int64_t head = 0; head < heads_ + kv_heads_; ++head) {
        uint16_t* v = row + head * dim;
        for (int64_t d = 0; d < dim; ++d) {
          const float partner = d < half ? -to_float(v[d + half]) : to_float(v[d - half]);
          rotated[d] = to_bf16(to_float(to_bf16(to_float(v[d]) * to_float(c[d]))) +
                               to_float(to_bf16(partner * to_float(s[d]))));
        }
        std::memcpy(v, rotated.data(), dim * sizeof(uint16_t));
      }
      for (int64_t head = 0; head < kv_heads_; ++head) {
        const int64_t offset = ((slots[b] * kv_heads_ + head) * max_len + positions[b]) * dim;
        std::memcpy(bits_of(layer.keys) + offset, row + (heads_ + head) * dim,
                    dim * sizeof(uint16_t));
        std::memcpy(bits_of(layer.values) + offset, row + (heads_ + kv_heads_ + head) * dim,
                    dim * sizeof(uint16_t));
      }
    }
  }

  // Each sequence's query heads over its own cached keys (positions 0..its position), in
  // fp32. One task per (sequence, key head), shared out among the pool's threads: the key
  // head's group of query heads share each read of a key and a value.
  void attend(const at::Tensor& qkv, const Layer& layer, const std::vector<int64_t>& slots,
              const std::vector<int64_t>& positions, at::Tensor& out) {
    const int64_t dim = head_dim_, group = heads_ / kv_heads_, width = qkv.size(1);
    const int64_t max_len = layer.keys.size(2), batch = int64_t(slots.size());
    int64_t longest = 0;
    for (int64_t p : positions) longest = std::max(longest, p + 1);
    pool_.run([&](int thread) {
      std::vector<float> scores(group * longest), sums(group * dim);
      for (int64_t task = thread; task < batch * kv_heads_; task += pool_.size()) {
        const int64_t b = task / kv_heads_, kv = task % kv_heads_, n = positions[b] + 1;
        const int64_t offset = (slots[b] * kv_heads_ + kv) * max_len * dim;
        const uint16_t* query = bits_of(qkv) + b * width + kv * group * dim;
        const uint16_t* keys = bits_of(layer.keys) + offset;
        const uint16_t* values = bits_of(layer.values) + offset;
        key_scores(query, keys, n, group, longest, scores.data());
        for (int64_t g = 0; g < group; ++g) softmax(scores.data() + g * longest, n);
        weighted_values(scores.data(), values, n, group, longest, sums.data());
        uint16_t* result = bits_of(out) + b * heads_ * dim + kv * group * dim;
        for (int64_t i = 0; i < group * dim; ++i) result[i] = to_bf16(sums[i]);
      }
    });
  }

  // scores[g * stride + j] = q_g · k_j / sqrt(dim) for GROUP query heads and N keys.
  void key_scores(const uint16_t* query, const uint16_t* keys, int64_t n, int64_t group,
                  int64_t stride, float* scores) const {
    const int64_t dim = head_dim_;
    const float scale = 1.f / std::sqrt(float(dim));
#ifdef __AVX512BF16__
    // bfloat16 pairs multiplied and summed into fp32 by one instruction (vdpbf16ps): exact
    // products of the bfloat16 inputs, as the fp32 path computes them.
    if (dim % 32 == 0 && dim <= 256 && group <= 8) {
      const int64_t chunks = dim / 32;
      for (int64_t j = 0; j < n; ++j) {
        __m512i key[8];
        for (int64_t c = 0; c < chunks; ++c)
          key[c] = _mm512_loadu_si512(keys + j * dim + c * 32);
        for (int64_t g = 0; g < group; ++g) {
          __m512 sum = _mm512_setzero_ps();
          for (int64_t c = 0; c < chunks; ++c)
            sum = _mm512_dpbf16_ps(sum, (__m512bh)_mm512_loadu_si512(query + g * dim + c * 32),
                                   (__m512bh)key[c]);
          scores[g * stride + j] = _mm512_reduce_add_ps(sum) * scale;
        }
      }
      return;
    }
#endif
    std::vector<float> q(group * dim), key(dim);
    for (int64_t i = 0; i < group * dim; ++i) q[i] = to_float(query[i]);
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t d = 0; d < dim; ++d) key[d] = to_float(keys[j * dim + d]);
      for (int64_t g = 0; g < group; ++g) {
        const float* qg = q.data() + g * dim;
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < dim; ++d) dot += qg[d] * key[d];
        scores[g * stride + j] = dot * scale;
      }
    }
  }

  static void softmax(float* row, int64_t n) {
    float highest = row[0];
#pragma omp simd reduction(max : highest)
    for (int64_t j = 1; j < n; ++j) highest = std::max(highest, row[j]);
    float total = 0.f;
    int64_t j = 0;
#ifdef __AVX512F__
    __m512 totals = _mm512_setzero_ps();
    for (; j + 16 <= n; j += 16) {
      const __m512 e = exp_at_most_zero(_mm512_sub_ps(_mm512_loadu_ps(row + j), _mm512_set1_ps(highest)));
      _mm512_storeu_ps(row + j, e);
      totals = _mm512_add_ps(totals, e);
    }
    total = _mm512_reduce_add_ps(totals);
#endif
    for (; j < n; ++j) total += (row[j] = std::exp(row[j] - highest));
    const float inverse = 1.f / total;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) row[i] *= inverse;
  }

  // sums[g * dim + d] = Σ_j weights[g * stride + j] · v_j[d], in fp32.
  void weighted_values(const float* weights, const uint16_t* values, int64_t n, int64_t group,
                       int64_t stride, float* sums) const {
    const int64_t dim = head_dim_;
    std::fill(sums, sums + group * dim, 0.f);
#ifdef __AVX512F__
    if (dim % 16 == 0 && dim * group <= 16 * 24) {
      const int64_t chunks = dim / 16;
      __m512 acc[24];
      for (int64_t i = 0; i < group * chunks; ++i) acc[i] = _mm512_setzero_ps();
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t c = 0; c < chunks; ++c) {
          const __m256i raw = _mm256_loadu_si256((const __m256i*)(values + j * dim + c * 16));
          const __m512 value = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
          for (int64_t g = 0; g < group; ++g)
            acc[g * chunks + c] =
                _mm512_fmadd_ps(_mm512_set1_ps(weights[g * stride + j]), value, acc[g * chunks + c]);
        }
      }
      for (int64_t i = 0; i < group * chunks; ++i) _mm512_storeu_ps(sums + i * 16, acc[i]);
      return;
    }
#endif
    std::vector<float> value(dim);
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t d = 0; d < dim; ++d) value[d] = to_float(values[j * dim + d]);
      for (int64_t g = 0; g < group; ++g) {
        const float weight = weights[g * stride + j];
        float* sg = sums + g * dim;
        for (int64_t d = 0; d < dim; ++d) sg[d] += weight * value[d];
      }
    }
  }

  // bf16(silu(gate)) * up, rounded: the first half of each row is the gate, the second up.
  at::Tensor silu_times(const at::Tensor& gate_up) const {
    const int64_t rows = gate_up.size(0), width = gate_up.size(1) / 2;
    at::Tensor out = at::empty({rows, width}, gate_up.options());
    for (int64_t b = 0; b < rows; ++b) {
      const uint16_t* gate = bits_of(gate_up) + b * 2 * width;
      const uint16_t* up = gate + width;
      uint16_t* result = bits_of(out) + b * width;
      for (int64_t i = 0; i < width; ++i) {
        const float g = to_float(gate[i]);
        result[i] = to_bf16(to_float(to_bf16(g / (1.f + std::exp(-g)))) * to_float(up[i]));
      }
    }
    return out;
  }

  // x += y (both [batch, hidden], contiguous: products return contiguous results), rounded.
  static void add_in_place(at::Tensor& x, const at::Tensor& y) {
    uint16_t* a = bits_of(x);
    const uint16_t* b = bits_of(y);
    for (int64_t i = 0; i < x.numel(); ++i) a[i] = to_bf16(to_float(a[i]) + to_float(b[i]));
  }

  ThreadPool pool_;
  std::vector<Layer> layers_;
  at::Tensor embed_, final_norm_, cos_, sin_;
  int64_t heads_, kv_heads_, head_dim_, hidden_;
  float eps_;
  int64_t dense_from_rows_;
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.def(
      "set_openmp_threads",
      [](int threads) {
        const int previous = at::get_num_threads();
        omp_set_num_threads(threads);
        return previous;
      },
      "PyTorch's OpenMP threads for ops called from this thread only (torch.set_num_threads "
      "sets them for every thread); returns the previous number.");
  py::class_<Product>(m, "Product")
      .def(py::init<std::string, at::Tensor, at::Tensor, at::Tensor, int64_t>(),
           py::arg("scheme"), py::arg("weight"), py::arg("scales"), py::arg("dense"),
           py::arg("group"));
  py::class_<Layer>(m, "Layer")
      .def(py::init<Product, Product, Product, Product, at::Tensor, at::Tensor, at::Tensor,
                    at::Tensor>(),
           py::arg("qkv"), py::arg("out"), py::arg("gate_up"), py::arg("down"),
           py::arg("attention_norm"), py::arg("mlp_norm"), py::arg("keys"), py::arg("values"));
  py::class_<Decoder>(m, "Decoder")
      .def(py::init<std::vector<Layer>, at::Tensor, at::Tensor, at::Tensor, at::Tensor, int64_t,
                    int64_t, double, int64_t, int64_t>(),
           py::arg("layers"), py::arg("embed"), py::arg("final_norm"), py::arg("cos"),
           py::arg("sin"), py::arg("heads"), py::arg("kv_heads"), py::arg("eps"),
           py::arg("dense_from_rows"), py::arg("threads"))
      // The step runs without the GIL: the server's other threads go on meanwhile.
      .def("decode", &Decoder::decode, py::call_guard<py::gil_scoped_release>());
}
