"""The rooms this node owns: their rules run here, one operation at a time per room.

Every live room has exactly one owner node (``live``). Whatever happens in a
room — a join, an admission, a drop, a timer — is an operation on its ``Room``
(pure rules, ``core/room.py``), run on the owner, in order, under the room's
lock. The owner then:

1. commits the outcome's store effects (token spent, revocations, audit) and the
   room's new snapshot (``live.persist``) — before anyone is told;
2. delivers the outcome: frames and closes to the nodes that hold the seats'
   sockets (itself, or others over the bridge), in the outcome's order;
3. sends the new snapshot to the other nodes with sockets in the room, so that
   their relay routes signals exactly as the owner would.

A node takes over a room whose owner is gone (``adopt``): it loads the last
snapshot, marks the seats whose sockets were on lost nodes as reconnecting (they
resume on any node within the grace period) and goes on — the browsers' media
never passed through the lost node, so the picture keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

import orjson

from ..core import protocol as proto
from ..core import roomstate
from ..core.errors import RoomServerError
from ..core.protocol import CloseCode
from ..core.roles import Role
from ..core.room import Audit, Close, Outcome, Room, RoomError, Send
from ..core.turn import ice_servers, mint_credentials
from ..live import Live, LiveUnavailable, NotOwner, room_key
from ..services import Services
from ..store import RoomRow, StoreUnavailable, Tx
from .bridge import Bridge
from .effects import (
    EVENTS_OF_AUDIT,
    LEFT_REASON,
    has_store_effects,
    persist_effects,
    spend_and_persist,
)

if TYPE_CHECKING:
    from .signalling import Gateway

log = logging.getLogger("roomserver.roomhost")

RESOLVE_ATTEMPTS = 8
TAKEOVER_SECONDS = 1.0  # how often a cluster node looks for rooms whose owner is gone


@dataclass
class Hosted:
    """A room this node owns, with where each seat's socket is."""

    room: Room
    locations: dict[str, str] = field(default_factory=dict)  # seat id -> node holding its socket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    timer: asyncio.TimerHandle | None = None
    stats_dirty: bool = False  # figures reported since the last snapshot (saved every few seconds)


class RoomHost:
    """Owner side of every room this node owns."""

    def __init__(self, services: Services, live: Live, bridge: Bridge) -> None:
        self.services = services
        self.live = live
        self.bridge = bridge
        self.rooms: dict[str, Hosted] = {}
        self.gateway: Gateway | None = None  # set by the gateway: deliveries to this node's sockets
        self.presence: Any = None  # the desks edge (expert busy while in a room), when set up
        self._adopting: dict[str, asyncio.Future[Hosted | None]] = {}
        self._parked: list[Callable[[Tx], Any]] = []  # store writes that failed while the store was down
        self._background: set[asyncio.Task[Any]] = set()
        # Until then (monotonic), a live room without a snapshot is not taken up afresh: Redis was away
        # and may have come back empty, and its owner may be about to write it again (see _adopt).
        self._settling_until = 0.0
        for kind, handler in (("join", self._remote_join), ("resume", self._remote_resume),
                              ("msg", self._remote_message), ("drop", self._remote_drop),
                              ("end", self._remote_end), ("remove", self._remote_remove),
                              ("withdraw", self._remote_withdraw),
                              ("ended", self._remote_ended), ("seat-send", self._remote_seat_send)):
            bridge.on(kind, handler)

    @property
    def node(self) -> str:
        return self.live.node

    # -- ownership -------------------------------------------------------------------------------

    async def resolve(self, room_id: str, row: RoomRow | None = None) -> str:
        """The node that owns the room: this one when it claims a room nobody owns (and adopts it).

        ``row``: the room as the caller just read it from the store, which spares adopting a read.
        """
        for _ in range(RESOLVE_ATTEMPTS):
            if room_id in self.rooms:
                return self.node
            owner = await self.live.owner(room_key(room_id))
            if owner == self.node:
                hosted = await self.adopt(room_id, row)
                if hosted is not None:
                    return self.node
                raise RoomError(proto.ErrorCode.ROOM_ENDED, "The consultation has ended.", CloseCode.ROOM_ENDED, 410)
            if owner is not None:
                return owner
            if await self.live.claim(room_key(room_id)):
                if await self.adopt(room_id, row) is None:
                    raise RoomError(proto.ErrorCode.ROOM_ENDED, "The consultation has ended.", CloseCode.ROOM_ENDED,
                                    410)
                return self.node
            await asyncio.sleep(0.05)  # another node claimed it between our two looks: ask again
        raise RoomServerError("unavailable", "The consultation cannot be reached right now; try again.", 503)

    async def adopt(self, room_id: str, row: RoomRow | None = None) -> Hosted | None:
        """Take up a room this node now owns: from its snapshot, or new from the store. None if it has ended."""
        hosted = self.rooms.get(room_id)
        if hosted is not None:
            return hosted
        pending = self._adopting.get(room_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[Hosted | None] = asyncio.get_running_loop().create_future()
        self._adopting[room_id] = future
        try:
            hosted = await self._adopt(room_id, row)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it from the await
            raise
        finally:
            self._adopting.pop(room_id, None)
        future.set_result(hosted)
        return hosted

    async def _adopt(self, room_id: str, row: RoomRow | None) -> Hosted | None:
        key = room_key(room_id)
        data = await self.live.load(key)
        if row is None:
            row = await self.services.store.rooms.get(room_id)
        if row is None or row.state == "ended":
            await self.live.forget(key)
            return None
        if data is not None:
            room = roomstate.load(orjson.loads(data), self._ice_servers_for)
            envelope_locations = orjson.loads(data).get("locations", {})
        elif row.state == "live" and time.monotonic() < self._settling_until:
            # Redis came back without the snapshot; the node that holds the room in memory re-claims it
            # within moments (recovered()). A fresh room now would cost every seat: ask to try again.
            await self.live.release(key)
            raise RoomServerError("unavailable", "The consultation cannot be reached right now; try again.", 503)
        else:
            room, envelope_locations = self._new_room(row), {}
        hosted = Hosted(room, dict(envelope_locations))
        self.rooms[room_id] = hosted
        async with hosted.lock:
            if data is not None:  # taken up from a snapshot: seats on a lost node may resume
                alive = await self.live.nodes()
                lost = [s.id for s in room.online_seats() if hosted.locations.get(s.id) not in alive]
                if lost:
                    log.info("room taken over: %d seat(s) were on a lost node and may resume", len(lost))
                    await self._apply(hosted, lambda r: r.lost(lost, time.time()))
                else:
                    await self._save(hosted, None)
            # A new room has no seat and nothing to save: its first change (a join) writes its snapshot.
            self._refresh_views(hosted)
            self._schedule(hosted)
        return hosted

    def _new_room(self, row: RoomRow) -> Room:
        s = self.services.settings
        ends_at = None if row.scheduled_end is None else float(row.scheduled_end + s.rooms.overrun_minutes * 60)
        return Room(row.id, row.title, waiting_room=row.waiting_room, max_participants=row.max_participants,
                    ends_at=ends_at, empty_timeout=s.rooms.empty_timeout_seconds,
                    resume_grace=s.signalling.resume_grace_seconds, ice_servers_for=self._ice_servers_for)

    def _ice_servers_for(self, seat: Any) -> list[dict[str, Any]]:
        s = self.services.settings
        creds = None
        if s.ice.turn_urls and s.turn_secret:
            creds = mint_credentials(s.turn_secret, seat.id, s.ice.turn_credential_lifetime_seconds, time.time())
        return ice_servers(s.ice.stun_urls, s.ice.turn_urls, creds)

    async def adopt_all(self) -> int:
        """At start (one node): take up every room a previous process left running. How many."""
        count = 0
        for room_id in await self.live.rooms():
            if await self.live.claim(room_key(room_id)) and await self.adopt(room_id) is not None:
                count += 1
        return count

    async def take_over_orphans(self) -> None:
        """A cluster node, every second: claim and adopt rooms whose owner is gone."""
        while True:
            await asyncio.sleep(TAKEOVER_SECONDS)
            if not self.live.healthy:
                continue
            try:
                for room_id in await self.live.orphans():
                    if await self.live.claim(room_key(room_id)):
                        await self.adopt(room_id)
            except (LiveUnavailable, StoreUnavailable) as exc:
                log.warning("takeover sweep skipped: %s", exc.code)
            except Exception:  # noqa: BLE001 - try again in a second
                log.exception("takeover sweep failed")

    # -- operations ---------------------------------------------------------------------------------

    async def join(self, room_id: str, claims: dict[str, Any], name: str, node: str) -> dict[str, Any]:
        """Seat a participant whose token the gateway checked; the token is spent in the same commit."""
        hosted = await self._hosted(room_id)
        async with hosted.lock:
            room, now = hosted.room, time.time()
            outcome = room.join(identity=claims["sub"], role=Role(claims["role"]), name=name, jti=claims["jti"],
                                now=now)
            seat = outcome.seat
            assert seat is not None
            hosted.locations[seat.id] = node
            unit = partial(spend_and_persist, claims["jti"], room_id, outcome.effects, int(now))
            try:
                started = await self._save(hosted, unit)
            except BaseException:
                room.revert_join(seat.id)
                hosted.locations.pop(seat.id, None)
                raise
            if started:
                self.services.events.publish("room.started", room_id)
            return self._seated(hosted, outcome, node)

    async def resume(self, room_id: str, secret: str, node: str) -> dict[str, Any]:
        hosted = await self._hosted(room_id)
        async with hosted.lock:
            outcome = hosted.room.resume(secret, time.time())
            seat = outcome.seat
            assert seat is not None
            previous = hosted.locations.get(seat.id)
            hosted.locations[seat.id] = node
            try:
                await self._save(hosted, self._unit(room_id, outcome))
            except BaseException:
                if previous is not None:
                    hosted.locations[seat.id] = previous
                raise
            return self._seated(hosted, outcome, node)

    def _seated(self, hosted: Hosted, outcome: Outcome, node: str) -> dict[str, Any]:
        """Deliver a join/resume and answer the gateway: the seat, its socket number, what to send it."""
        self._announce(hosted.room, outcome)
        self._deliver(hosted, outcome)
        self._refresh_views(hosted, skip=node)
        self._schedule(hosted)
        seat = outcome.seat
        assert seat is not None
        answer: dict[str, Any] = {"seat": seat.id, "conn": seat.conn, "replies": outcome.reply, "owner": self.node}
        if node != self.node:
            answer["view"] = self._view(hosted)
        return answer

    async def message(self, room_id: str, seat_id: str, conn: int, msg: Any) -> None:
        """A parsed client message (not a relayed signal) from a seat's socket."""
        hosted = self.rooms.get(room_id)
        if hosted is None:
            return
        async with hosted.lock:
            room = hosted.room
            seat = room.seat(seat_id)
            if seat is None or seat.conn != conn or not seat.online:
                return  # a socket that was replaced, removed, or the room ended: what it still sends is void
            ref = proto.message_type(msg)
            now = time.time()
            try:
                if isinstance(msg, proto.Signal):
                    room.route_signal(seat_id, msg.to)  # the relay took every signal it could: this one is refused
                    return
                if isinstance(msg, proto.State):
                    outcome = room.set_state(seat_id, msg.fields(), now)
                elif isinstance(msg, proto.Stats):
                    room.report_stats(seat_id, msg.peers, now)
                    hosted.stats_dirty = True
                    self.services.events.publish("participant.stats", room_id, seat=seat_id,
                                                 peers={k: v.as_dict() for k, v in msg.peers.items()})
                    return  # figures for monitoring: kept in memory, saved with the next change
                elif isinstance(msg, proto.Admit):
                    outcome = room.admit(seat_id, msg.peer, now)
                elif isinstance(msg, proto.Deny):
                    outcome = room.deny(seat_id, msg.peer, now)
                elif isinstance(msg, proto.Remove):
                    outcome = room.remove(seat_id, msg.peer, now)
                elif isinstance(msg, proto.End):
                    outcome = room.end(seat_id, "moderator", now)
                elif isinstance(msg, proto.Leave):
                    outcome = room.leave(seat_id, now)
                else:  # pragma: no cover - the gateway hands over only the types above
                    raise RoomError(proto.ErrorCode.BAD_MESSAGE, "Unsupported message.")
            except RoomError as exc:
                self._to_seat(hosted, seat_id, proto.error(exc.code, exc.message, ref))
                if exc.close is not None:
                    self._close(hosted, seat_id, seat.conn, int(exc.close), exc.code)
                return
            await self._commit(hosted, outcome)
            for reply in outcome.reply:
                self._to_seat(hosted, seat_id, reply)

    async def dropped(self, room_id: str, seat_id: str, conn: int) -> None:
        """The seat's socket (number ``conn``) is gone: the seat is reconnecting."""
        hosted = self.rooms.get(room_id)
        if hosted is None:
            return
        async with hosted.lock:
            await self._apply(hosted, lambda room: room.disconnected(seat_id, time.time(), conn))

    async def operator_end(self, room_id: str, reason: str = "operator") -> bool:
        """End a live room from outside (operator, API): everyone disconnected, every token withdrawn."""
        hosted = self.rooms.get(room_id)
        if hosted is None or hosted.room.ended:
            return False
        async with hosted.lock:
            if hosted.room.ended:
                return False
            await self._apply(hosted, lambda room: room.end(None, reason, time.time()))
        return True

    async def operator_remove(self, room_id: str, seat_id: str) -> dict[str, Any] | None:
        """Remove one participant from outside; who it was (role, identity) or None if no such seat."""
        hosted = self.rooms.get(room_id)
        if hosted is None or hosted.room.ended:
            return None
        async with hosted.lock:
            seat = hosted.room.seat(seat_id)
            if seat is None:
                return None
            who = {"role": seat.role.value, "identity": seat.identity}
            await self._apply(hosted, lambda room: room.remove(None, seat_id, time.time()))
        return who

    async def withdraw(self, room_id: str, jti: str) -> bool:
        """An invite of a live room was withdrawn: the seat that joined with it goes (``Room.withdraw``)."""
        hosted = self.rooms.get(room_id)
        if hosted is None or hosted.room.ended:
            return False
        async with hosted.lock:
            await self._apply(hosted, lambda room: room.withdraw(jti, time.time()))
        return True

    async def send_to_seat(self, room_id: str, seat_id: str, message: dict[str, Any]) -> None:
        """A message for one seat from outside the room's rules (the switchboard's call status)."""
        hosted = self.rooms.get(room_id)
        if hosted is not None:
            self._to_seat(hosted, seat_id, message)

    async def _tick(self, room_id: str) -> None:
        hosted = self.rooms.get(room_id)
        if hosted is None:
            return
        async with hosted.lock:
            if not self.live.healthy:
                self._schedule(hosted, retry=1.0)  # nothing can be saved now: look again in a second
                return
            await self._apply(hosted, lambda room: room.tick(time.time()))

    # -- executing outcomes ----------------------------------------------------------------------------

    async def _apply(self, hosted: Hosted, operation: Callable[[Room], Outcome]) -> Outcome | None:
        """Run ``operation`` on the room and commit its outcome; a refusal changes nothing."""
        try:
            outcome = operation(hosted.room)
        except RoomError:
            return None
        await self._commit(hosted, outcome)
        return outcome

    async def _commit(self, hosted: Hosted, outcome: Outcome) -> None:
        """Persist (store effects and snapshot), announce, deliver, update the other nodes' copies."""
        room = hosted.room
        unit = self._unit(room.id, outcome)
        try:
            await self._save(hosted, unit)
        except StoreUnavailable:
            # The database is down: the call goes on; the audit rows wait here and are written when it is back.
            if unit is not None:
                self._parked.append(unit)
            await self._save(hosted, None)
        self._announce(room, outcome)
        self._deliver(hosted, outcome)
        self._refresh_views(hosted)
        if room.ended:
            await self._close_room(hosted)
        else:
            self._schedule(hosted)

    def _unit(self, room_id: str, outcome: Outcome) -> Callable[[Tx], Any] | None:
        if not has_store_effects(outcome.effects):
            return None
        return partial(persist_effects, room_id, outcome.effects, int(time.time()))

    async def _save(self, hosted: Hosted, unit: Callable[[Tx], Any] | None) -> Any:
        """Commit ``unit`` and the room's snapshot, before anyone hears of the change."""
        room = hosted.room
        snapshot = None if room.ended else self._snapshot(hosted)
        try:
            return await self.live.persist(room_key(room.id), snapshot, unit)
        except NotOwner:
            log.warning("room %s was taken over by another node; dropping this node's copy", room.id)
            self._drop(hosted)
            raise RoomServerError("moved", "The consultation moved to another server; resume.", 503) from None
        except LiveUnavailable:
            if unit is not None:
                raise  # the store part may not have happened: the caller must not go on as if it had
            return None  # Redis is away: the snapshot is written again when it is back (recovered())

    def _snapshot(self, hosted: Hosted) -> bytes:
        hosted.stats_dirty = False
        data = roomstate.dump(hosted.room)
        data["locations"] = hosted.locations
        return orjson.dumps(data)

    def _view(self, hosted: Hosted) -> dict[str, Any]:
        return {"snapshot": roomstate.dump(hosted.room), "locations": hosted.locations, "owner": self.node}

    def _announce(self, room: Room, outcome: Outcome) -> None:
        """Events for monitoring, metrics, webhooks and the desks: once, on the owner."""
        publish = self.services.events.publish
        for effect in outcome.effects:
            if not isinstance(effect, Audit):
                continue
            self._presence(room.id, effect)
            seat = {"seat": effect.seat, "role": effect.role}
            if effect.event == "room.end":
                publish("room.ended", room.id, reason=effect.detail.get("reason"))
                continue
            for kind in EVENTS_OF_AUDIT.get(effect.event, ()):
                if kind == "participant.left":
                    publish(kind, room.id, reason=LEFT_REASON[effect.event], **seat)
                else:
                    publish(kind, room.id, **seat)

    def _presence(self, room_id: str, effect: Audit) -> None:
        """Experts and interpreters are busy on their desks while they sit in a consultation."""
        if self.presence is None:
            return
        if effect.event == "room.end":
            self.presence.room_ended(room_id)
        elif effect.role in ("expert", "interpreter") and effect.identity:
            if effect.event in ("seat.join", "seat.resume"):
                self.presence.entered_room(effect.identity, room_id)
            elif effect.event in LEFT_REASON and effect.event != "seat.deny":
                # "left"/"timeout": the desk may offer to go back; "removed": released
                self.presence.left_room(effect.identity, room_id, LEFT_REASON[effect.event])

    def _deliver(self, hosted: Hosted, outcome: Outcome) -> None:
        """Sends and closes in the outcome's order, to whichever node holds each seat's socket."""
        frames: dict[int, bytes] = {}
        for effect in outcome.effects:
            if isinstance(effect, Send):
                key = id(effect.message)
                frame = frames.get(key)
                if frame is None:
                    frame = frames[key] = proto.dumpb(effect.message)
                self._frame(hosted, effect.seat, frame)
            elif isinstance(effect, Close):
                self._close(hosted, effect.seat, effect.conn, int(effect.code), effect.reason)

    def _frame(self, hosted: Hosted, seat_id: str, frame: bytes) -> None:
        node = hosted.locations.get(seat_id)
        if node == self.node:
            if self.gateway is not None:
                self.gateway.deliver(hosted.room.id, seat_id, frame)
        elif node is not None:
            self.bridge.frame(node, hosted.room.id, seat_id, frame)

    def _to_seat(self, hosted: Hosted, seat_id: str, message: dict[str, Any]) -> None:
        self._frame(hosted, seat_id, proto.dumpb(message))

    def _close(self, hosted: Hosted, seat_id: str, conn: int, code: int, reason: str) -> None:
        node = hosted.locations.get(seat_id)
        if node == self.node:
            if self.gateway is not None:
                self.gateway.close_seat(hosted.room.id, seat_id, conn, code, reason)
        elif node is not None:
            self.bridge.tell(node, {"t": "close", "room": hosted.room.id, "seat": seat_id, "conn": conn,
                                    "code": code, "reason": reason})

    def _refresh_views(self, hosted: Hosted, skip: str | None = None) -> None:
        """This node's relay reads the room itself; other nodes with sockets in it get the new snapshot."""
        room = hosted.room
        if self.gateway is not None:
            self.gateway.refresh(room, hosted.locations, self.node)
        watchers = {n for seat_id, n in hosted.locations.items() if n != self.node and n != skip
                    and (seat := room.seat(seat_id)) is not None and seat.online}
        if watchers:
            view = {"t": "view", "room": room.id, **self._view(hosted)} if not room.ended else \
                {"t": "gone", "room": room.id}
            for node in watchers:
                self.bridge.tell(node, view)

    def _schedule(self, hosted: Hosted, retry: float | None = None) -> None:
        """One timer per room at its next deadline (grace expiry, empty room, scheduled end)."""
        if hosted.timer is not None:
            hosted.timer.cancel()
            hosted.timer = None
        deadline = hosted.room.next_deadline()
        if deadline is None:
            return
        delay = retry if retry is not None else max(0.0, deadline - time.time()) + 0.01
        room_id = hosted.room.id
        hosted.timer = asyncio.get_running_loop().call_later(delay, lambda: self._spawn(self._tick(room_id)))

    async def _close_room(self, hosted: Hosted) -> None:
        room_id = hosted.room.id
        self._drop(hosted)
        try:
            await self.live.forget(room_key(room_id))
        except LiveUnavailable:
            pass  # the next owner finds the store row ended and forgets it then

    def _drop(self, hosted: Hosted) -> None:
        if hosted.timer is not None:
            hosted.timer.cancel()
        self.rooms.pop(hosted.room.id, None)
        if self.gateway is not None:
            self.gateway.forget_room(hosted.room.id)

    async def _hosted(self, room_id: str) -> Hosted:
        hosted = self.rooms.get(room_id) or await self.adopt(room_id)
        if hosted is None:
            raise RoomError(proto.ErrorCode.ROOM_ENDED, "The consultation has ended.", CloseCode.ROOM_ENDED, 410)
        return hosted

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- health and shutdown ----------------------------------------------------------------------------

    def lost_sockets(self) -> None:
        """Redis is away and every socket of this node was closed: its seats are reconnecting (in memory)."""
        now = time.time()
        self._settling_until = float("inf")
        for hosted in list(self.rooms.values()):
            mine = [s.id for s in hosted.room.online_seats() if hosted.locations.get(s.id) == self.node]
            outcome = hosted.room.lost(mine, now)
            self._announce(hosted.room, outcome)
            self._deliver(hosted, outcome)

    async def recovered(self) -> None:
        """Redis is back: keep (and save again) the rooms nobody else took over meanwhile; drop the others."""
        # The other nodes reconnect within a retry or two; give their rooms a registration's lifetime.
        self._settling_until = time.monotonic() + self.services.settings.cluster.node_ttl_seconds
        for hosted in list(self.rooms.values()):
            room_id = hosted.room.id
            try:
                if not await self.live.claim(room_key(room_id)):
                    log.info("room %s was taken over while Redis was away", room_id)
                    self._drop(hosted)
                    continue
                async with hosted.lock:
                    await self._save(hosted, None)
                    self._refresh_views(hosted)
                    self._schedule(hosted)
            except RoomServerError as exc:
                log.warning("room %s not re-saved: %s", room_id, exc.code)

    async def save_figures(self, interval: float = 2.0) -> None:
        """A cluster owner, every few seconds: save rooms whose connection figures changed, so that the
        operator dashboard on any node shows them (a figure alone never costs a write per report)."""
        while True:
            await asyncio.sleep(interval)
            if not self.live.healthy:
                continue
            for hosted in [h for h in self.rooms.values() if h.stats_dirty]:
                hosted.stats_dirty = False
                async with hosted.lock:
                    if not hosted.room.ended:
                        try:
                            await self._save(hosted, None)
                        except RoomServerError:
                            pass

    async def retry_parked(self) -> None:
        """Write the store effects that waited for the database, oldest first, every few seconds."""
        while True:
            await asyncio.sleep(2.0)
            while self._parked:
                try:
                    await self.services.store.write(self._parked[0])
                except StoreUnavailable:
                    break
                self._parked.pop(0)

    async def release_all(self) -> None:
        """Draining: save every owned room and give it up, so another node takes it over at once."""
        for hosted in list(self.rooms.values()):
            async with hosted.lock:
                try:
                    await self._save(hosted, None)
                    await self.live.release(room_key(hosted.room.id))
                except RoomServerError:
                    pass
            if hosted.timer is not None:
                hosted.timer.cancel()
        if self._parked:
            log.warning("%d store write(s) could not be made before shutdown", len(self._parked))

    def cancel_timers(self) -> None:
        for hosted in self.rooms.values():
            if hosted.timer is not None:
                hosted.timer.cancel()
                hosted.timer = None

    # -- requests from other nodes ------------------------------------------------------------------

    def _owned(self, room_id: str) -> Hosted:
        hosted = self.rooms.get(room_id)
        if hosted is None:
            raise RoomServerError("not_owner", "This node does not own the consultation.", 421)
        return hosted

    async def _remote_join(self, m: dict[str, Any]) -> dict[str, Any]:
        self._owned(m["room"])
        return await self.join(m["room"], m["claims"], m["name"], m["from"])

    async def _remote_resume(self, m: dict[str, Any]) -> dict[str, Any]:
        self._owned(m["room"])
        return await self.resume(m["room"], m["secret"], m["from"])

    async def _remote_message(self, m: dict[str, Any]) -> None:
        try:
            msg = proto.parse_client_message(m["frame"], self.services.settings.signalling.max_message_bytes)
        except proto.ProtocolError:
            return  # the gateway parsed it already; it cannot fail here
        await self.message(m["room"], m["seat"], m["conn"], msg)

    async def _remote_drop(self, m: dict[str, Any]) -> bool:
        self._owned(m["room"])
        await self.dropped(m["room"], m["seat"], m["conn"])
        return True

    async def _remote_end(self, m: dict[str, Any]) -> bool:
        self._owned(m["room"])
        return await self.operator_end(m["room"], m.get("reason", "operator"))

    async def _remote_remove(self, m: dict[str, Any]) -> dict[str, Any] | None:
        self._owned(m["room"])
        return await self.operator_remove(m["room"], m["seat"])

    async def _remote_withdraw(self, m: dict[str, Any]) -> bool:
        self._owned(m["room"])
        return await self.withdraw(m["room"], m["jti"])

    async def _remote_ended(self, m: dict[str, Any]) -> None:
        if m["room"] in self.rooms:
            await self.operator_end(m["room"], m["reason"])

    async def _remote_seat_send(self, m: dict[str, Any]) -> None:
        await self.send_to_seat(m["room"], m["seat"], m["message"])
