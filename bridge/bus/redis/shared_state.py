"""The work queue's shared state on Redis: records only the lease holder changes, fenced by it.

Under ``<prefix>:state:<name>`` (a hash of key → record) with ``<prefix>:state:<name>:kept`` (set
once records were written: a hash that is missing while this key exists is empty, one missing along
with it was lost with Redis's data; records found without it, as an eviction of that key alone would
leave them, are still read, never dropped), and each replica's notes under
``<prefix>:state:<name>:notes:<node>``, each node that kept one listed in the set
``<prefix>:state:<name>:noted``, and the notes another replica took over from it under
``<prefix>:state:<name>:adopted:<node>`` until it has read them. A change is one Lua script: it
checks that the lease key still names this replica's consumer, then changes the records (and those
of other names the change carries ``along``) and keeps the note, all or nothing, so a replica that
lost the lease (slow, cut off) can no longer change what the next holder reads. A new holder moves
the other replicas' notes to its own (``adopt``), one script per node the set lists, fenced the
same way, so each note is acted on by one replica; the
same script keeps a copy of each note it moved for the replica it took it from (``taken_over``),
which may have stored it and not dropped it (killed in between): so told, that replica sends nothing
of it. A replica drops its notes (``forget``) in a script too, which drops that copy of a note it
drops (it came back to it) and says which of them were gone (taken over meanwhile). The set, not a
scan of the keyspace, is read, so the cost does not grow with unrelated keys; only notes an earlier
version kept (before the set held its ``""`` member, "listed") are found by one scan.
A script's command or key the ACL refuses is told naming the script and the commands it runs
(``script_named``), as Redis's words name neither; each script asks the ACL first
(``redis.acl_check_cmd``, Redis 7) and is refused before it writes anything, since Redis keeps
what a script wrote before a refused command: a half-moved note would be acted on twice, or not
at all.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final

from redis.exceptions import ResponseError

from bridge.bus.capabilities import StateChange
from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.link import Link, script_named
from bridge.errors import TransportError

__all__ = ["RedisSharedState"]

# Notes wait this long for their replica to come back (they are forgotten once acted on).
_NOTES_KEPT_MS: Final = 7 * 24 * 3600 * 1000
# The member of the set of nodes with notes that says every node with notes is listed in it.
_LISTED: Final = ""

# Lua: nil when the ACL lets this user run each of ``checks`` (a command and its arguments, the
# key first: each write the script is about to make, no other), else Redis's refusal of the
# first it does not, to return before anything is written: run as the ACL refuses it, so that
# Redis words it and ACL LOG lists it, as for any command. Redis before 7 cannot be asked: its
# refusal comes halfway, as it did.
_ASK_FIRST: Final = """
local function refused(checks)
  if not redis.acl_check_cmd then return nil end
  for _, check in ipairs(checks) do
    if not redis.acl_check_cmd(unpack(check)) then
      local answer = redis.pcall(unpack(check))
      if type(answer) == 'table' and answer.err then return answer end
    end
  end
  return nil
end
"""

# KEYS: lease, then records and kept of each name changed (the change's own first, then those
# ``along``), and with a note, notes and the set of nodes with notes. ARGV: consumer, restore
# (0/1), note id ("" for none), note, the number of names changed, then for each the number of
# records put, key and value of each, the number of records removed and their keys, then (last)
# this replica's node.
_COMMIT: Final = (
    _ASK_FIRST
    + """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' and redis.call('exists', KEYS[2]) == 1 then return 0 end
local names = tonumber(ARGV[5])
local notes = 2 + 2 * names
local checks = {}
for n = 1, names do
  table.insert(checks, {'set', KEYS[2 * n + 1], '1'})
  table.insert(checks, {'hset', KEYS[2 * n], 'f', 'v'})
  table.insert(checks, {'hdel', KEYS[2 * n], 'f'})
end
if ARGV[3] ~= '' then
  table.insert(checks, {'hset', KEYS[notes], 'f', 'v'})
  table.insert(checks, {'pexpire', KEYS[notes], '1'})
  table.insert(checks, {'sadd', KEYS[notes + 1], 'm'})
end
local no = refused(checks)
if no then return no end
local i = 6
for n = 1, names do
  redis.call('set', KEYS[2 * n + 1], '1')
  local put = tonumber(ARGV[i])
  for j = 1, put do
    redis.call('hset', KEYS[2 * n], ARGV[i + 2 * j - 1], ARGV[i + 2 * j])
  end
  i = i + 1 + 2 * put
  local removed = tonumber(ARGV[i])
  for j = 1, removed do
    redis.call('hdel', KEYS[2 * n], ARGV[i + j])
  end
  i = i + 1 + removed
end
if ARGV[3] ~= '' then
  redis.call('hset', KEYS[notes], ARGV[3], ARGV[4])
  redis.call('pexpire', KEYS[notes], NOTES_KEPT_MS)
  redis.call('sadd', KEYS[notes + 1], ARGV[#ARGV])
end
return 1
"""
).replace("NOTES_KEPT_MS", str(_NOTES_KEPT_MS))
_COMMITTING: Final = (
    "a change of the work queue's {name} records, a script running GET, EXISTS, SET, HSET, HDEL,"
    " PEXPIRE and SADD"
)

# KEYS: lease, another replica's notes, this replica's notes, the set of nodes with notes, the
# other replica's notes taken over. ARGV: consumer, the other replica's node, this replica's
# node. How many notes moved; -1 when this replica does not hold the lease.
_ADOPT: Final = (
    _ASK_FIRST
    + """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return -1 end
local notes = redis.call('hgetall', KEYS[2])
local checks = {{'srem', KEYS[4], 'm'}}
if #notes > 0 then
  table.insert(checks, {'hset', KEYS[3], 'f', 'v'})
  table.insert(checks, {'pexpire', KEYS[3], '1'})
  table.insert(checks, {'hset', KEYS[5], 'f', 'v'})
  table.insert(checks, {'pexpire', KEYS[5], '1'})
  table.insert(checks, {'del', KEYS[2]})
  table.insert(checks, {'sadd', KEYS[4], 'm'})
end
local no = refused(checks)
if no then return no end
for i = 1, #notes, 2 do
  redis.call('hset', KEYS[3], notes[i], notes[i + 1])
  redis.call('hset', KEYS[5], notes[i], notes[i + 1])
end
redis.call('srem', KEYS[4], ARGV[2])
if #notes > 0 then
  redis.call('pexpire', KEYS[3], NOTES_KEPT_MS)
  redis.call('pexpire', KEYS[5], NOTES_KEPT_MS)
  redis.call('del', KEYS[2])
  redis.call('sadd', KEYS[4], ARGV[3])
end
return #notes / 2
"""
).replace("NOTES_KEPT_MS", str(_NOTES_KEPT_MS))
# KEYS: this replica's notes, its notes taken over. ARGV: the note ids to drop. The ids that
# were gone (another replica took them over); the copy taken over of each note dropped goes too.
_FORGET: Final = (
    _ASK_FIRST
    + """
local no = refused({{'hdel', KEYS[1], 'f'}, {'hdel', KEYS[2], 'f'}})
if no then return no end
local gone = {}
for _, id in ipairs(ARGV) do
  if redis.call('hdel', KEYS[1], id) == 1 then
    redis.call('hdel', KEYS[2], id)
  else
    table.insert(gone, id)
  end
end
return gone
"""
)
_FORGETTING: Final = "the dropping of this replica's {name} notes, a script running HDEL"
_ADOPTING: Final = (
    "the take-over of another replica's {name} notes, a script running GET, HGETALL, HSET,"
    " SREM, PEXPIRE, DEL and SADD"
)


class RedisSharedState:
    """``SharedState`` on Redis for one replica (its consumer name fences, its node keeps notes)."""

    def __init__(self, link: Link, layout: Layout, *, consumer: str, node: str) -> None:
        self._link = link
        self._layout = layout
        self._consumer = consumer
        self._node = node

    async def load(self, name: str) -> dict[str, bytes] | None:
        """Every record under ``name``, None when never written or lost with Redis's data (no
        record, and no mark that there were some).

        Raises ``TransportError`` when Redis cannot be reached.
        """
        key = self._layout.state(name)
        with self._link.boundary(f"read the {name} records"):
            pipe = self._link.client.pipeline(transaction=True)
            pipe.exists(f"{key}:kept")
            pipe.hgetall(key)
            kept, records = await pipe.execute()
        if not kept and not records:
            return None
        return {text(field): value for field, value in (records or {}).items()}

    async def read(self, name: str, keys: Collection[str]) -> dict[str, bytes] | None:
        """The records of ``keys`` under ``name`` that exist; None as for ``load``.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        key = self._layout.state(name)
        wanted = list(keys)
        with self._link.boundary(
            f"read {len(wanted)} of the {name} records", work=f"read some of the {name} records"
        ):
            pipe = self._link.client.pipeline(transaction=True)
            pipe.exists(f"{key}:kept")
            pipe.exists(key)
            if wanted:
                pipe.hmget(key, wanted)
            kept, held, *values = await pipe.execute()
        if not kept and not held:
            return None
        found = values[0] if values else []
        return {k: value for k, value in zip(wanted, found, strict=True) if value is not None}

    async def holds(self, name: str) -> bool:
        """Whether ``name`` holds any record now (EXISTS: its hash is there).

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"look for the {name} records"):
            return bool(await self._link.client.exists(self._layout.state(name)))

    async def commit(self, name: str, change: StateChange) -> bool:
        """Apply ``change`` while this replica holds the work-queue lease; False when not (or a
        restore found records).

        Raises ``TransportError`` when Redis cannot be reached.
        """
        key = self._layout.state(name)
        note_id, note = change.note if change.note is not None else ("", b"")
        changes = {name: change, **change.along}
        args: list[Any] = [self._consumer, "1" if change.restore else "0", note_id, note]
        args.append(len(changes))
        keys = [self._layout.leader]
        for changed, records in changes.items():
            keys += [self._layout.state(changed), f"{self._layout.state(changed)}:kept"]
            args.append(len(records.put))
            for field, value in records.put.items():
                args += [field, value]
            args += [len(records.remove), *records.remove]
        args.append(self._node)
        if note_id:  # the keys of notes are named only when one is written
            keys += [self._notes(name), f"{key}:noted"]
        with self._link.boundary(f"change the {name} records"):
            done = await self._run(_COMMIT, _COMMITTING.format(name=name), keys, args)
        return bool(done)

    async def notes(self, name: str) -> dict[str, bytes]:
        """This replica's notes under ``name``.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"read this replica's {name} notes"):
            notes: Any = await self._link.client.hgetall(self._notes(name))
        return {text(field): value for field, value in (notes or {}).items()}

    async def forget(self, name: str, note_ids: Collection[str]) -> set[str]:
        """Drop notes acted on, and the copies ``taken_over`` keeps of them (they came back);
        those of ``note_ids`` that were gone (another replica took them over).

        Raises ``TransportError`` when Redis cannot be reached.
        """
        if not note_ids:
            return set()
        with self._link.boundary(f"forget this replica's {name} notes"):
            gone = await self._run(
                _FORGET,
                _FORGETTING.format(name=name),
                [self._notes(name), self._adopted(name)],
                list(note_ids),
            )
        return {text(note_id) for note_id in gone}

    async def taken_over(self, name: str) -> dict[str, bytes]:
        """This replica's notes under ``name`` another replica took over (``adopt``) before it
        dropped them, by id, until ``settle`` drops them.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"read this replica's {name} notes taken over"):
            notes: Any = await self._link.client.hgetall(self._adopted(name))
        return {text(field): value for field, value in (notes or {}).items()}

    async def settle(self, name: str, note_ids: Collection[str]) -> None:
        """Drop what ``taken_over`` said of ``note_ids`` (acted on).

        Raises ``TransportError`` when Redis cannot be reached.
        """
        if note_ids:
            with self._link.boundary(f"drop this replica's {name} notes taken over"):
                await self._link.client.hdel(self._adopted(name), *note_ids)

    async def adopt(self, name: str) -> int:
        """Move every other replica's notes under ``name`` to this one's, while it holds the
        lease; how many moved.

        Raises ``TransportError`` when Redis cannot be reached or this replica does not hold the
        lease.
        """
        mine = self._notes(name)
        noted = f"{self._layout.state(name)}:noted"
        moved = 0
        with self._link.boundary(f"take over the other replicas' {name} notes"):
            listed: Any = await self._link.client.smembers(noted)
            nodes = {text(member) for member in listed}
            if _LISTED not in nodes:
                nodes |= await self._unlisted(name)
                await self._link.client.sadd(noted, _LISTED, *nodes)
            for node in sorted(nodes - {_LISTED, self._node}):
                done = await self._run(
                    _ADOPT,
                    _ADOPTING.format(name=name),
                    [
                        self._layout.leader,
                        self._notes(name, node),
                        mine,
                        noted,
                        self._adopted(name, node),
                    ],
                    [self._consumer, node, self._node],
                )
                if int(done) < 0:
                    raise TransportError(
                        "this replica no longer holds the work-queue lease: the other replicas'"
                        " notes are left to the holder"
                    )
                moved += int(done)
        return moved

    async def _run(self, script: str, told: str, keys: list[str], args: list[Any]) -> Any:
        """What ``script`` returns, run on ``keys`` with ``args``; a command or key of it the ACL
        refuses is told with ``told`` (what it is for and the commands it runs)."""
        try:
            return await self._link.client.eval(script, len(keys), *keys, *args)
        except ResponseError as exc:
            named = script_named(exc, told)
            if named is exc:
                raise
            raise named from exc

    async def _unlisted(self, name: str) -> set[str]:
        """The nodes with notes an earlier version kept without listing them: one scan."""
        start = f"{self._layout.state(name)}:notes:"
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", start) + "*"
        keys = [text(key) async for key in self._link.client.scan_iter(match=pattern)]
        return {key.removeprefix(start) for key in keys}

    def _notes(self, name: str, node: str | None = None) -> str:
        return f"{self._layout.state(name)}:notes:{node or self._node}"

    def _adopted(self, name: str, node: str | None = None) -> str:
        return f"{self._layout.state(name)}:adopted:{node or self._node}"
