"""Which network addresses omnicoach may fetch from: the SSRF rules.

A link in a chat message is chosen by whoever writes the message, but the server fetches it
from inside the network it runs in. Without these rules a message could make omnicoach read
its own admin endpoints, other machines on the LAN, or the cloud metadata service that hands
out credentials. So the fetcher resolves the host of every hop (the first URL and each
redirect) here, refuses it when ANY of its addresses is not public, and then connects to the
exact address that was checked, so DNS cannot answer differently between check and connect.
"""

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from omnicoach.errors import ConfigError
from omnicoach.links.errors import LinkError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services hand out the machine's credentials: never fetched, even when an
# allowlisted network covers them. AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba Cloud.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})

# RFC 6598 shared address space: Python's is_private does not count it, yet it is internal.
CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
# RFC 6052 NAT64: the last 32 bits are an IPv4 address that a NAT64 gateway connects to.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_kind(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is ("loopback", "private", ...), or None for a
    public address, the only kind fetched without an allowlist entry."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.version == 6:
        # IPv6 forms that carry an IPv4 address reach that address: judge the IPv4 one.
        nat64 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None
        for form, embedded in (
            ("IPv4-mapped", ip.ipv4_mapped),
            ("6to4", ip.sixtofour),
            ("NAT64", nat64),
        ):
            if embedded is not None:
                kind = address_kind(embedded)
                return f"{form} {kind}" if kind else None
    if ip.is_unspecified:  # 0.0.0.0 and :: connect to this machine on Linux
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip in CARRIER_GRADE_NAT:
        return "carrier-grade NAT"
    if ip.is_reserved:  # before private: 240.0.0.0/4 is both, "reserved" says more
        return "reserved"
    if ip.is_private or (ip.version == 6 and ip.is_site_local):
        return "private"
    if not ip.is_global:  # documentation, benchmarking and other special-purpose ranges
        return "non-public"
    return None


@dataclass(frozen=True)
class Allowlist:
    """Hosts and networks that may be fetched although they are local or private."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "Allowlist":
        """From the `link_allowlist` setting: host names, IP addresses and CIDR networks."""
        hosts, networks = set(), []
        for entry in entries:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            if not text or any(c in text for c in "/:@ \t"):
                raise ConfigError(
                    f"link_allowlist: {entry!r} is neither a host name nor an IP address "
                    "or network (e.g. 'wiki.intranet', '127.0.0.1', '10.0.0.0/8')"
                )
            hosts.add(_normal_host(text))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, ip: IPAddress) -> bool:
        return _normal_host(host) in self.hosts or any(ip in net for net in self.networks)


def checked_addresses(url: str, host: str, port: int, allowlist: Allowlist) -> list[IPAddress]:
    """The addresses `host` resolves to, every one of them allowed; LinkError otherwise.

    `url` only names the link in messages. Resolution goes through the system resolver
    (getaddrinfo), so odd spellings of an address ("2130706433", "0177.0.0.1") are judged by
    the address they really mean. Its time is bounded by the resolver's own timeout."""
    if _normal_host(host) in METADATA_HOSTS:
        raise LinkError(f"{url} names {host}, a cloud metadata service: omnicoach never reads it")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise LinkError(f"could not connect to {url}: the host {host} was not found") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise LinkError(f"could not connect to {url}: the host {host} has no address")
    for ip in addresses:
        kind = address_kind(ip)
        if kind is None:
            continue
        where = f"{url} is" if _same_address(host, ip) else f"{url} resolves to {ip},"
        article = "an" if kind[0] in "aeiouIU" else "a"
        if kind.endswith("cloud metadata"):
            raise LinkError(f"{where} {article} {kind} address: omnicoach never reads it")
        if not allowlist.allows(host, ip):
            raise LinkError(
                f"{where} {article} {kind} address: omnicoach does not fetch local or private "
                f"addresses (add {host} to link_allowlist to allow it)"
            )
    return addresses


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _same_address(host: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == ip
    except ValueError:
        return False
