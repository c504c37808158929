"""Rate limiting: exact per-route limits in memory, on Redis or a Redis Cluster.

``keys`` turns a request into a counter key; ``windows`` holds the strategies' arithmetic;
``memory`` and ``redis`` count (one atomic step per decision); ``breaker`` handles a failing
storage; ``fields`` merges the RateLimit fields of several layers; ``policies`` chooses a
request's limit (static, or per caller); ``middleware`` is the layer.
"""

from .memory import MemoryCounters
from .middleware import RateLimitMiddleware
from .policies import is_claim_limit, parse_limit, policy_of

_parse_limit = parse_limit

__all__ = ["MemoryCounters", "RateLimitMiddleware", "_parse_limit", "is_claim_limit", "policy_of"]
