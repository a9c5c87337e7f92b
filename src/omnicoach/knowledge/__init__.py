"""Domain knowledge: the yoga & fitness knowledge base, retrieval over it, grounded prompts."""
