"""Course aggregates in Redis, kept exactly under any interleaving.

Design
------
One Redis hash per (user, course) holds the integer sums *and* each session's
last applied contribution with its DynamoDB version; one hash per course holds
the same for each learner's row of the course's roster (``service.domain.roster``),
versioned by the row's revision. The two are the same structure, kept by the
same scripts::

    n m w ss t p    sessions, modules, sum(score*modules), sum(score), time, points
    L               entries that count at least one session (a course's learners)
    s:<entryId>     "<version>:<n>:<m>:<w>:<ss>:<t>:<p>" (a deleted session: all zero), then
                    "|<type>:<results>:<time>:<scores>" for each module type it has results of,
                    and for a course's learner "#<week>=<points>,…" (their points by ISO week)
    b:<type>:c|t|s  that type's results, time and sum of scores
    b:<type>:L      entries with a result of that type (a course's learners who studied it)
    G               types with a result (in a learner's points, whose "types" are their courses)
    k:<week>        a course's entries with a session completed in that ISO week (its weekly leaderboard's size)
    i               incarnation: a random nonce written when the hash is created
    c               "1" once the hash is known to hold every entry
    a               when it was completed, ms since the epoch
    e               the replication id of the primary it was completed on (see Failover)
    r               the replication id of the primary its rebuild was claimed on
    l               rebuild lock, expiry in ms since the epoch

**Apply rule** (one Lua script, atomic): a contribution is applied only if its
version is newer than the one recorded for that session; the sums, the by-type
sums included, move by the difference between the new and the recorded
contribution. Applying is
therefore idempotent (a retry or a re-post adds nothing twice) and
order-independent (an older version arriving late is ignored), so a write's
update and a rebuild's update of the same session commute.

**Writes** apply their session after DynamoDB accepted it. If the hash is
missing, the write creates it *incomplete*; an incomplete hash is never served,
so a partial aggregate can never be read.

**Reads** are one script: a hash complete *on the primary that serves it* and
younger than the maximum age is returned (and its TTL renewed); otherwise the
reader claims the rebuild: the script deletes whatever the hash held and
starts it again, empty, under a fresh incarnation nonce and the rebuild lock.
The rebuilder queries DynamoDB (strongly consistent), applies every session
through the same rule and marks the hash complete *only if the incarnation is
unchanged*. Every write that finished in DynamoDB after the claim applies its
Lua after the claim too, so it either landed in this same hash or the hash was
flushed/evicted/expired (or claimed again) in between, which changes the
incarnation and cancels the completion. Every write that finished before the
claim is in the query. Because the rebuild starts from nothing, a session the
table no longer holds (deleted, or gone with a restore to an earlier point)
is not counted, and an item re-created at version 1 is. Hence a completed
hash equals DynamoDB's state; no sequence of flushes, retries or concurrent
writes can make it double count or miss a write.

Each creating call carries a fresh nonce, so a hash recreated after a flush
never reuses an old incarnation. Rebuilds for large courses are applied in
chunks; only the last chunk asks for completion. A reader that joined a rebuild
whose completion was refused gets that rebuild's query result: DynamoDB's
state when the query ran.

**Failover.** A promoted replica may hold a complete hash that lacks updates
the old primary acknowledged. What tells is the primary's replication id
(``master_replid`` of ``INFO replication``): Redis draws a new one whenever a
node becomes a primary (a failover, a cluster replica taking over, the old
primary taken back, a restart), and a replica takes its primary's. The scripts
read it on the node they run on: a claim records it (``r``), a completion is
made only on the node that claimed (a node promoted meanwhile may lack updates
the claimer's hash took) and records it (``e``), and only a hash completed under
the id of the node serving it is served. Every other is rebuilt from DynamoDB,
which holds every acknowledged write; so is a hash a cluster reshard moved to
another primary, once. Nothing is kept for it in Redis or in the process, so no
connection can carry a stale id; a server that does not tell (a managed endpoint
may hide INFO, and a user without ``+info`` cannot run it) gives '' everywhere,
and its completions are trusted up to the maximum age (logged once). It costs a
hit, a claim and a completion one ``INFO replication`` inside the script.

**Leaderboards** (SPEC §8) are a course's, so they ride on its hash. Each entry
of a course's hash (a learner's roster row) also carries the learner's points by
ISO week (``#<week>=<points>,…``), and beside the hash, sharing its Redis Cluster
hash tag, sorted sets hold the boards: ``board:{course}`` every learner with a
session, ``board:{course}:w<week>`` those with a session completed that week,
each scored minus their points so that ascending order is most points first,
then user id. The apply script moves them in the same atomic step as the sums:
an entry applied under the version rule sets its learner's score on the
all-time board (or removes them, once they have no session), adds or rescores
them on each week it names and removes them from the weeks it no longer names,
with ``k:<week>`` counting the entries that name the week as ``L`` counts the
live ones. So, whenever the hash exists, each board holds exactly its entries'
points; a claim and a drop delete the boards with the hash, and a rebuild's
rows put them back through the same script. What Redis may lose apart from the
hash (eviction takes one key at a time, an idle board expires) is caught by
the reader: members are only ever added for entries that hold them, so a board
whose cardinality equals the hash's count (``L``, or ``k:<week>``) is whole, and
one that is short is treated as a miss, claiming the course's rebuild. A read
is one script call: the hash's completeness (the same incarnation, primary and
maximum age as any read), the cardinality check, ``ZRANGE`` of the window,
``ZCOUNT`` of the scores above its first row (competition ranks: one more than
how many have more points) and the caller's ``ZSCORE`` and ``ZCOUNT`` —
logarithmic in the course's learners. Every hit on the course renews its boards
with its hash; a weekly board expires no later than the end of its 13th week,
the last a reader may name.

**Updates that did not arrive.** When this process cannot deliver a write's
update, because Redis failed or the request was cancelled (deadline,
shutdown) after DynamoDB took the write, it marks the aggregate stale: it is
deleted before this process serves it again, and the maintenance loop deletes
it as soon as Redis answers. What no process can know about (a write whose
process died between the two writes, or a timed-out write that DynamoDB
applied late and nobody saw) is bounded by the maximum age: a hash completed
longer ago than that is rebuilt on its next read. The idle TTL alone would not
bound it, since reads renew it.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import Counter
from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError, TryAgainError
from redis.typing import EncodableT

from service.domain.errors import CacheUnavailable
from service.domain.model import (
    PAST_WEEKS,
    Board,
    Contribution,
    CourseFigures,
    CourseTotals,
    Standing,
    TypeTotals,
    type_sums_text,
    week_of,
    weeks_text,
)
from service.domain.ports import Busy, Claimed, Hit, ReadResult
from service.redis.breaker import CircuitBreaker, CircuitState
from service.redis.channel import ScriptChannel, Scripts

if TYPE_CHECKING:
    from service.telemetry.tracing import RedisSpans

log = logging.getLogger(__name__)

T = TypeVar("T")
H = TypeVar("H")

# Sessions per apply-script call in a rebuild.
REBUILD_CHUNK = 500
# How long a remembered answer (whether a teacher teaches a course, a course's title) lives.
REMEMBER_SECONDS = 60

_CLOCK = """
local DAY_MS = 86400000
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
-- When a course's board is to expire: after the hash's idle TTL (ARGV[1] of every script) from now, and a
-- week's no later than the end of its 13th week, when no reader may name it any more.
local function board_expiry(week, now)
  local expiry = now + tonumber(ARGV[1])
  if week then expiry = math.min(expiry, (7 * (tonumber(week) + 13) - 3) * DAY_MS) end
  return string.format('%d', expiry)
end
-- The replication id of the primary running this script, which Redis draws anew whenever a node becomes a
-- primary; '' where the server does not tell (a managed endpoint may hide INFO).
local function primary()
  local info = redis.pcall('INFO', 'replication')
  return type(info) == 'string' and string.match(info, 'master_replid:(%w+)') or ''
end
"""

# A read that is not a hit: {2} while another caller's rebuild lock holds, else this caller claims the
# rebuild. A rebuild starts from nothing: what the hash (and a course's boards) held may count sessions the
# table no longer has.
_MISS_FUNCTION = (
    _CLOCK
    + """
-- A hit on a course's hash keeps its boards (KEYS[2] on) as long as the hash.
local function renew_boards(now)
  for k = 2, #KEYS do
    redis.call('PEXPIREAT', KEYS[k], board_expiry(string.match(KEYS[k], ':w(%d+)$'), now))
  end
end
local function miss(key, lock, now)
  if lock and tonumber(lock) > now then return {2} end
  redis.call('DEL', unpack(KEYS))
  local claimer = primary()
  redis.call('HSET', key, 'i', ARGV[2], 'l', string.format('%d', now + tonumber(ARGV[3])), 'r', claimer)
  redis.call('PEXPIRE', key, ARGV[1])
  return {0, ARGV[2], claimer}
end
"""
)

_APPLY_FUNCTION = (
    _CLOCK
    + """
local function fmt(x) return string.format('%d', x) end
local SUMS = {'n', 'm', 'w', 'ss', 't', 'p'}
-- Versions as decimal strings (no leading zeros), by length then text: exact at any size, where tonumber is a double.
local function later(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
-- Moves the by-type sums of key by sign times each '<type>:<results>:<time>:<scores>' of text,
-- and G by the types whose results leave zero or return to it.
local function move_types(key, text, sign)
  for kind, c, t, s in string.gmatch(text, '([%w-]+):(%d+):(%d+):(%d+)') do
    local prefix = 'b:' .. kind .. ':'
    local results = redis.call('HINCRBY', key, prefix .. 'c', fmt(sign * tonumber(c)))
    if tonumber(c) > 0 and results == (sign > 0 and tonumber(c) or 0) then redis.call('HINCRBY', key, 'G', sign) end
    redis.call('HINCRBY', key, prefix .. 't', fmt(sign * tonumber(t)))
    redis.call('HINCRBY', key, prefix .. 's', fmt(sign * tonumber(s)))
    if tonumber(c) > 0 then redis.call('HINCRBY', key, prefix .. 'L', sign) end
  end
end
local function week_points(text)
  local weeks = {}
  for week, points in string.gmatch(text, '(%d+)=(%d+)') do weeks[week] = points end
  return weeks
end
-- The weekly boards a reader may name (KEYS[3] on): a script touches no key it was not given, as a
-- Redis Cluster requires (a slot being migrated refuses it midway). The board of any other week has
-- expired, or expires as it is written.
local declared = {}
for k = 3, #KEYS do declared[KEYS[k]] = true end
-- Keeps a course's leaderboards with one learner's entry: the all-time board and each week's, a
-- sorted set scored minus the points, of the learners with a session then; k:<week> counts the
-- entries with that week, as L counts the live ones, so that a reader can tell a board whole.
local function move_boards(key, member, live, points, old_text, new_text, now)
  local board = KEYS[2]
  if live then redis.call('ZADD', board, fmt(-points), member) else redis.call('ZREM', board, member) end
  redis.call('PEXPIRE', board, ARGV[1])
  local old, new = week_points(old_text), week_points(new_text)
  for week in pairs(old) do
    if new[week] == nil then
      local weekly = board .. ':w' .. week
      if declared[weekly] then redis.call('ZREM', weekly, member) end
      redis.call('HINCRBY', key, 'k:' .. week, -1)
    end
  end
  for week, p in pairs(new) do
    local weekly = board .. ':w' .. week
    if declared[weekly] then
      redis.call('ZADD', weekly, fmt(-tonumber(p)), member)
      redis.call('PEXPIREAT', weekly, board_expiry(week, now))
    end
    if old[week] == nil then redis.call('HINCRBY', key, 'k:' .. week, 1) end
  end
end
local function apply(key, argv, first)
  local now = #KEYS > 1 and now_ms() or 0
  for j = first, #argv, 10 do
    local field = 's:' .. argv[j]
    local version = argv[j + 1]
    local old = redis.call('HGET', key, field)
    local before = {0, 0, 0, 0, 0, 0}
    local old_types, old_weeks = '', ''
    local newer = true
    if old then
      local ov, a, b, c, d, e, f, rest, weeks = string.match(
        old, '^(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d+)([^#]*)#?(.*)$')
      if not later(version, ov) then
        newer = false
      else
        before = {tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e), tonumber(f)}
        old_types, old_weeks = rest, weeks
      end
    end
    if newer then
      local types, weeks = argv[j + 8], argv[j + 9]
      local value = table.concat(argv, ':', j + 1, j + 7)
      if types ~= '' then value = value .. '|' .. types end
      if weeks ~= '' then value = value .. '#' .. weeks end
      redis.call('HSET', key, field, value)
      for k = 1, 6 do
        redis.call('HINCRBY', key, SUMS[k], fmt(tonumber(argv[j + 1 + k]) - before[k]))
      end
      local live = tonumber(argv[j + 2]) > 0
      local counted = (live and 1 or 0) - (before[1] > 0 and 1 or 0)
      if counted ~= 0 then redis.call('HINCRBY', key, 'L', counted) end
      if old_types ~= '' then move_types(key, old_types, -1) end
      if types ~= '' then move_types(key, types, 1) end
      if #KEYS > 1 then move_boards(key, argv[j], live, tonumber(argv[j + 7]), old_weeks, weeks, now) end
    end
  end
end
"""
)

# KEYS[1] hash, and for a course KEYS[2] its all-time leaderboard, then the weekly ones a reader may name;
# ARGV: ttl_ms, nonce ('' = only update a hash that exists),
# expected incarnation ('' = do not complete), k, then k fields
# to return on completion, then 10 values per entry: id, version, its n m w ss t p,
# its by-type sums and its points by week ('' for none). Returns {1, n, m, w, ss, t, p, L, G, the k fields}
# when completed, else {0}. Completes only on the primary the rebuild was claimed on (r): another one,
# promoted meanwhile, may lack updates the claimer's hash took.
APPLY_SCRIPT = (
    _APPLY_FUNCTION
    + """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  if ARGV[2] == '' then return {0} end
  redis.call('HSET', key, 'i', ARGV[2])
end
local extra = tonumber(ARGV[4])
apply(key, ARGV, 5 + extra)
redis.call('PEXPIRE', key, ARGV[1])
local claim = ARGV[3] ~= '' and redis.call('HMGET', key, 'i', 'r')
if claim and claim[1] == ARGV[3] and claim[2] == primary() then
  redis.call('HSET', key, 'c', '1', 'a', string.format('%d', now_ms()), 'e', claim[2])
  redis.call('HDEL', key, 'l', 'r')
  local h = redis.call('HMGET', key, 'n', 'm', 'w', 'ss', 't', 'p', 'L', 'G', unpack(ARGV, 5, 4 + extra))
  table.insert(h, 1, 1)
  return h
end
return {0}
"""
)

# KEYS[1] hash, then for a course its leaderboards (dropped with it by a claim); ARGV: ttl_ms, nonce,
# lock_ms, max_age_ms, then fields to return too. Returns {1, n, m, w, ss, t, p, L, G, those
# fields} on a hit, {0, incarnation, the claiming node's replication id} when this caller now holds
# the rebuild lock, {2} when another caller is rebuilding.
READ_SCRIPT = (
    _MISS_FUNCTION
    + """
local key = KEYS[1]
local h = redis.call('HMGET', key, 'c', 'n', 'm', 'w', 'ss', 't', 'p', 'L', 'G', 'i', 'l', 'a', 'e', unpack(ARGV, 5))
local now = now_ms()
if h[1] == '1' and now - tonumber(h[12] or 0) < tonumber(ARGV[4]) and h[13] == primary() then
  redis.call('PEXPIRE', key, ARGV[1])
  renew_boards(now)
  local hit = {1, h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]}
  for k = 14, #h do hit[k - 4] = h[k] end
  return hit
end
return miss(key, h[11], now)
"""
)

# KEYS[1] a course's hash, KEYS[2] the leaderboard read, then every leaderboard of the course (dropped
# with the hash by a claim); ARGV: ttl_ms, nonce, lock_ms, max_age_ms, the hash's count
# of the board's learners ('L', or 'k:<week>'), offset, limit, the caller's id ('' for none), '1' to
# claim a rebuild on a miss. Returns {1, learners,
# how many rank above the first item, {rank above the caller, their score} or {}, {member, score, ...}}
# on a hit, {0, incarnation, the claiming node's replication id} when this caller now holds the
# rebuild lock, {2} when another caller is rebuilding, {3} for a miss not claimed.
BOARD_SCRIPT = (
    _MISS_FUNCTION
    + """
local key, board = KEYS[1], KEYS[2]
local h = redis.call('HMGET', key, 'c', 'e', 'a', 'l', ARGV[5])
local now = now_ms()
local learners = tonumber(h[5] or 0)
-- A board missing a member it should hold (evicted, expired) is as good as no board.
if h[1] == '1' and now - tonumber(h[3] or 0) < tonumber(ARGV[4]) and h[2] == primary()
    and redis.call('ZCARD', board) == learners then
  redis.call('PEXPIRE', key, ARGV[1])
  renew_boards(now)
  local offset = tonumber(ARGV[6])
  local items = redis.call('ZRANGE', board, offset, offset + tonumber(ARGV[7]) - 1, 'WITHSCORES')
  local above = 0
  if #items > 0 then above = redis.call('ZCOUNT', board, '-inf', '(' .. items[2]) end
  local you = {}
  if ARGV[8] ~= '' then
    local score = redis.call('ZSCORE', board, ARGV[8])
    if score then you = {redis.call('ZCOUNT', board, '-inf', '(' .. score), score} end
  end
  return {1, learners, above, you, items}
end
if ARGV[9] == '' then return {3} end
return miss(key, h[4], now)
"""
)


def aggregate_key(user_id: str, course_id: str) -> str:
    # "v3": entries carry points and by-type sums since module results and points. Older hashes, which
    # tasks of an earlier release may still keep during a deploy, lack them and are never read.
    return f"stats:v3:agg:{user_id}:{course_id}"


def points_key(user_id: str) -> str:
    """A learner's points over every course: one entry per session, grouped by course (``CourseSession``)."""
    return f"stats:v3:points:{user_id}"


_COURSE_PREFIX = "stats:v4:course:{"


def course_key(course_id: str) -> str:
    """The course-wide aggregate: one entry per learner of the course's roster.

    "v4" since it keeps the course's leaderboards; the braces make a Redis Cluster hash tag, so that the
    hash and its boards, which one script call reads or moves together, share a slot."""
    return f"{_COURSE_PREFIX}{course_id}}}"


def board_key(course_id: str, week: int | None = None) -> str:
    """A course's leaderboard, all time or of one ISO week (``service.domain.model.week_of``); the
    apply script names the weekly ones the same way."""
    board = f"stats:v4:board:{{{course_id}}}"
    return board if week is None else f"{board}:w{week}"


def _course_of(key: str) -> str | None:
    return key[len(_COURSE_PREFIX) : -1] if key.startswith(_COURSE_PREFIX) else None


def _boards(course_id: str, now_ms: int) -> list[str]:
    """Every leaderboard a course may have: all time, and each week's that has not expired. Those are the
    weeks a reader may name, and the next one, which a session completed up to 5 minutes ahead opens; one
    more at each end allows for the host's and Redis's clocks disagreeing about when a week ends."""
    current = week_of(now_ms)
    weeks = range(current - PAST_WEEKS - 1, current + 2)
    return [board_key(course_id), *(board_key(course_id, week) for week in weeks)]


def _nonce() -> str:
    return os.urandom(8).hex()


def _figures(reply: Sequence[Any], types: Sequence[str] = ()) -> CourseFigures:
    """A hit's or a completion's figures; with ``types``, the by-type fields of :func:`_type_fields` follow."""
    # Spelt out rather than a generator: this runs on every cached read.
    sessions, modules, weighted, score_sum, time_ms, points, learners, groups = reply[1:9]
    by_type: list[TypeTotals] = []
    entries: list[tuple[str, int]] = []
    for index, kind in enumerate(types):
        results, kind_time, scores, kind_entries = (int(value or 0) for value in reply[9 + 4 * index : 13 + 4 * index])
        if results:
            by_type.append(TypeTotals(kind, results, kind_time, scores))
            entries.append((kind, kind_entries))
    totals = CourseTotals(
        int(sessions or 0),
        int(modules or 0),
        int(weighted or 0),
        int(score_sum or 0),
        int(time_ms or 0),
        tuple(by_type),
        int(points or 0),
    )
    return CourseFigures(totals, int(learners or 0), tuple(entries), int(groups or 0))


def _with_boards(key: str) -> list[str]:
    """The keys an apply moves and a claim or a drop deletes: a course's hash with every one of its
    leaderboards."""
    course = _course_of(key)
    return [key] if course is None else [key, *_boards(course, time.time_ns() // 1_000_000)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _board_of(reply: Sequence[Any], offset: int, me: str | None) -> Board:
    """A hit of the board script: a sorted set's scores are minus the points."""
    learners, above, you, items = int(reply[1]), int(reply[2]), reply[3], reply[4]
    standings: list[Standing] = []
    for index in range(0, len(items), 2):
        points = -int(float(items[index + 1]))
        if not standings:
            rank = above + 1
        elif points != standings[-1].points:
            rank = offset + index // 2 + 1
        standings.append(Standing(rank, points, _text(items[index])))
    mine = Standing(int(you[0]) + 1, -int(float(you[1])), me) if you and me else None
    return Board(learners, tuple(standings), mine)


def _type_fields(types: Sequence[str]) -> list[str]:
    return [f"b:{kind}:{sum_name}" for kind in types for sum_name in ("c", "t", "s", "L")]


def _entry_args(entries: Sequence[Contribution]) -> list[str | int]:
    args: list[str | int] = []
    for entry in entries:
        totals = entry.totals
        args += (
            entry.entry_id,
            entry.version,
            totals.sessions,
            totals.modules,
            totals.weighted_score,
            totals.score_sum,
            totals.time_ms,
            totals.points,
            type_sums_text(totals.by_type),
            weeks_text(entry.weeks),
        )
    return args


class AggregateCache:
    """The Redis side of the aggregates; every failure surfaces as :class:`CacheUnavailable`."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        ttl_seconds: int,
        max_age_seconds: int,
        lock_seconds: float,
        breaker: CircuitBreaker,
        slow_reads: Counter | None = None,
        scripts: Scripts | None = None,
        module_types: Sequence[str] = (),
    ) -> None:
        self._redis = redis
        # Every module type's by-type fields: read with a breakdown, and returned by every completion
        # (a rebuild's figures may serve a breakdown reader who joined it).
        self._types = tuple(module_types)
        self._type_fields = _type_fields(self._types)
        self._ttl_ms = ttl_seconds * 1000
        self._max_age_ms = max_age_seconds * 1000
        self._lock_ms = int(lock_seconds * 1000)
        self._breaker = breaker
        self._apply = redis.register_script(APPLY_SCRIPT)
        self._read = redis.register_script(READ_SCRIPT)
        self._board = redis.register_script(BOARD_SCRIPT)
        # Every request runs a script (a read, or a write's apply): on lean connections (``scripts``, or a
        # channel made for the URL) where the URL allows it, else through redis-py.
        if scripts is None and isinstance(redis, Redis):
            scripts = ScriptChannel.for_client(redis)
            if scripts is None:
                log.warning(
                    "scripts go through redis-py, which costs more CPU per read and per write",
                    extra={"reason": ScriptChannel.unsupported(redis)},
                )
        self._channel = scripts
        self._slow_reads = slow_reads
        self._told_no_primary_id = False
        # Aggregates whose update this process could not deliver: they must not
        # be served again until deleted (then rebuilt from DynamoDB).
        self._stale: set[str] = set()
        self.spans: RedisSpans | None = None  # set by service.telemetry.tracing when traces are on

    def key(self, user_id: str, course_id: str) -> str:
        return aggregate_key(user_id, course_id)

    def course_key(self, course_id: str) -> str:
        return course_key(course_id)

    def points_key(self, user_id: str) -> str:
        return points_key(user_id)

    @property
    def stale_count(self) -> int:
        return len(self._stale)

    @property
    def circuit_state(self) -> CircuitState:
        return self._breaker.state

    @property
    def healthy(self) -> bool:
        """Whether Redis answered the last call (the circuit is closed)."""
        return self._breaker.state is CircuitState.CLOSED

    async def _call(self, operation: Awaitable[T]) -> T:
        if not self._breaker.allows():
            if inspect.iscoroutine(operation):
                operation.close()
            raise CacheUnavailable("circuit open")
        try:
            result = await operation
        except TryAgainError as exc:
            # A cluster migrating the slot, not a failing Redis: no reason to open the circuit.
            raise CacheUnavailable(type(exc).__name__) from exc
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            self._breaker.record_failure()
            raise CacheUnavailable(type(exc).__name__) from exc
        self._breaker.record_success()
        return result

    async def _delete_stale(self, key: str) -> None:
        # Unmark before deleting: a failure recorded while the delete is in flight must survive it.
        self._stale.discard(key)
        try:
            await self._call(self._redis.delete(*_with_boards(key)))
        except BaseException:
            # Cancelled (deadline, shutdown) or failed: the delete may not have happened.
            self._stale.add(key)
            raise

    async def read(self, key: str, *, by_type: bool = False) -> ReadResult:
        """The aggregate if cached and complete, with its sums by module type if ``by_type``."""
        types = self._types if by_type else ()
        more = self._type_fields if by_type else []
        result = await self._read_or_claim(
            self._read, key, _with_boards(key), more, lambda reply: Hit(_figures(reply, types))
        )
        assert result is not None  # the read script claims every miss
        return result

    async def _read_or_claim(
        self,
        script: AsyncScript,
        key: str,
        keys: list[str],
        more: Sequence[EncodableT],
        hit: Callable[[Sequence[Any]], H],
    ) -> H | Claimed | Busy | None:
        """A read script on the aggregate at ``key``: ``hit`` of its reply on a hit; else the rebuild this
        caller claimed, Busy while another caller rebuilds, or None for a miss not claimed."""
        if key in self._stale:
            await self._delete_stale(key)
        args: list[EncodableT] = [self._ttl_ms, _nonce(), self._lock_ms, self._max_age_ms, *more]
        reply = await self._call(self._script(script, keys, args, slow=self._slow_reads))
        status = int(reply[0])
        if status == 1:
            return hit(reply)
        if status == 0:
            if not reply[2] and not self._told_no_primary_id:
                self._told_no_primary_id = True
                log.warning(
                    "Redis does not report its replication id (INFO replication, which the user may need "
                    "granted): a failover is caught only by the aggregates' maximum age"
                )
            return Claimed(_text(reply[1]))
        return Busy() if status == 2 else None

    async def _script(
        self, script: AsyncScript, keys: list[str], args: Sequence[EncodableT], *, slow: Counter | None = None
    ) -> Any:
        """A script on the channel, or through redis-py where there is none (counted in ``slow``)."""
        if self._channel is not None:
            if self.spans is not None:
                return await self.spans.run(self._channel, script, keys, args)
            return await self._channel.run(script, keys, args)
        if slow is not None:
            slow.inc()
        return await script(keys=keys, args=args)

    async def read_board(
        self, course_id: str, week: int | None, window: tuple[int, int], me: str | None, *, claim: bool
    ) -> Board | Claimed | Busy | None:
        """A window (offset, limit) of a course's leaderboard, all time or of one week, and ``me``'s place;
        on a miss, the claim of the course's rebuild when ``claim`` asks for it (else None)."""
        course = course_key(course_id)
        boards = [board_key(course_id, week), *_boards(course_id, time.time_ns() // 1_000_000)]
        count = "L" if week is None else f"k:{week}"
        more = [count, *window, me or "", "1" if claim else ""]
        return await self._read_or_claim(
            self._board, course, [course, *boards], more, lambda reply: _board_of(reply, window[0], me)
        )

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.aclose()

    def mark_stale(self, key: str) -> None:
        """The aggregate may have missed a write: delete it before it is served again."""
        self._stale.add(key)

    async def apply_write(self, key: str, entry: Contribution) -> None:
        """Apply one session's stored state; if that fails or is cancelled, remember the aggregate as stale."""
        try:
            args: list[EncodableT] = [self._ttl_ms, _nonce(), "", 0, *_entry_args([entry])]
            await self._call(self._script(self._apply, _with_boards(key), args))
        except BaseException:
            # A cancellation (request deadline, shutdown) may come after DynamoDB took
            # the write and before Redis did: the aggregate may now miss it.
            self.mark_stale(key)
            raise

    async def apply_change(self, key: str, entry: Contribution) -> None:
        """Apply a change seen in the table's stream, to a cached aggregate only: an absent
        one is rebuilt from DynamoDB when next read, so nothing is cached for nobody."""
        args: list[EncodableT] = [self._ttl_ms, "", "", 0, *_entry_args([entry])]
        await self._call(self._script(self._apply, _with_boards(key), args))

    async def holds_entry(self, key: str, entry_id: str) -> bool:
        """Whether an aggregate holds an entry (a session, or a learner of a course)."""
        return bool(await self._call(self._redis.hexists(key, f"s:{entry_id}")))

    async def forget(self, key: str) -> None:
        """Drop an aggregate (a course's with its leaderboards): its next read rebuilds it from nothing."""
        await self._call(self._redis.delete(*_with_boards(key)))

    async def complete(self, key: str, incarnation: str, entries: Sequence[Contribution]) -> CourseFigures | None:
        """Apply a rebuild's entries; the figures if the aggregate is now complete."""
        chunks = [entries[i : i + REBUILD_CHUNK] for i in range(0, len(entries), REBUILD_CHUNK)] or [[]]
        reply: Sequence[Any] = [0]
        keys = _with_boards(key)
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            fields = self._type_fields if last else []
            args: list[Any] = [self._ttl_ms, _nonce(), incarnation if last else "", len(fields)]
            args += [*fields, *_entry_args(chunk)]
            reply = await self._call(self._script(self._apply, keys, args))
        return _figures(reply, self._types) if int(reply[0]) == 1 else None

    async def recall(self, key: str) -> str | None:
        """A short answer remembered by :meth:`remember`, None if there is none (expired, flushed)."""
        value: bytes | str | None = await self._call(self._redis.get(key))
        return value.decode() if isinstance(value, bytes) else value

    async def remember(self, key: str, value: str, *, replace: bool) -> None:
        """Remember a short answer for ``REMEMBER_SECONDS``; unless ``replace``, only where none is
        remembered (a reader's answer never overwrites the one a change just set)."""
        await self._call(self._redis.set(key, value, ex=REMEMBER_SECONDS, nx=not replace))

    async def release(self, key: str) -> None:
        """Give up a rebuild lock so other readers need not wait for it to expire."""
        await self._call(self._redis.hdel(key, "l"))

    async def repair(self) -> int:
        """Delete the aggregates this process left stale; how many were repaired."""
        repaired = 0
        for key in list(self._stale):
            await self._delete_stale(key)
            repaired += 1
        return repaired

    async def ping(self) -> None:
        await self._call(self._redis.ping())
