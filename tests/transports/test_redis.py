"""Tests for RedisTransport (`transports._redis`) on a real redis-server started by the fixture."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys

import pytest
import trio

from transports import (
    Delivery,
    NameClaimed,
    PeerLost,
    RedisTransport,
    SystemNameTaken,
    TransportLink,
    UnknownRecipient,
)
from transports._redis_connection import open_redis_connection
from transports.testing import RedisServer

HEARTBEAT = 0.2


def _transport(server: RedisServer, **options: object) -> RedisTransport:
    # A namespace per test, so that tests can share a REDIS_URL server.
    namespace = f"test-{secrets.token_hex(3)}"
    return RedisTransport(server.url, namespace=namespace, heartbeat=HEARTBEAT, **options)  # type: ignore[arg-type]


def _need_killable(server: RedisServer) -> None:
    if not server.killable:
        pytest.skip("a shared redis server (REDIS_URL) is never killed by tests")


async def _delivery(link: TransportLink) -> Delivery:
    while True:
        item = await link.receive()
        if isinstance(item, Delivery):
            return item


async def _peer_lost(link: TransportLink) -> PeerLost:
    while True:
        item = await link.receive()
        if isinstance(item, PeerLost):
            return item
        await link.ack(item)


async def _redis(server: RedisServer, *command: str | bytes | int) -> object:
    async with open_redis_connection(server.url) as connection:
        return await connection.execute(*command)


async def test_name_claimed_names_the_holder(redis_server: RedisServer) -> None:
    """A name held by a live node is refused with NameClaimed naming the holder's system."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("one") as one, transport.connect("two") as two:
            await one.claim("shared")
            with pytest.raises(NameClaimed, match=r"^name 'shared' is already held by system "):
                await two.claim("shared")
            await one.claim("shared")  # claiming again what one holds is fine


async def test_system_name_taken_while_alive(redis_server: RedisServer) -> None:
    """A second live node with the same system name is refused; after a goodbye it is not."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("same"):
            with pytest.raises(SystemNameTaken):
                async with transport.connect("same"):
                    pass
        async with transport.connect("same"):
            pass


async def test_released_empty_inbox_leaves_no_key(redis_server: RedisServer) -> None:
    """Releasing a name, or closing its link, deletes its inbox once nothing is left in it."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("a") as a:
            await a.claim("short-lived")
            await a.send("short-lived", b"x")
            await a.ack(await _delivery(a))
            await a.release("short-lived")
            await a.claim("kept")
            keys = await _redis(redis_server, "KEYS", transport.prefix + "inbox:*")
            assert keys == [(transport.prefix + "inbox:kept").encode()]
        assert await _redis(redis_server, "KEYS", transport.prefix + "inbox:*") == []


async def test_acks_are_written_on_an_otherwise_idle_link(redis_server: RedisServer) -> None:
    """An ack is written soon even if its link sends nothing more (after a release too)."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("a") as a, transport.connect("b") as b:
            await b.claim("other")
            await b.release("other")  # writes buffered acks itself
            await b.claim("idle")
            for round_number in range(2):
                await a.send("idle", b"x")
                await b.ack(await _delivery(b))
                stream = transport.prefix + "inbox:idle"
                for _ in range(100):
                    if await _redis(redis_server, "XLEN", stream) == 0:
                        break
                    await trio.sleep(0.01)
                assert await _redis(redis_server, "XLEN", stream) == 0, round_number


async def test_acked_entries_are_deleted_so_streams_stay_bounded(
    redis_server: RedisServer,
) -> None:
    """Over 10,000 sends and acks, an inbox stream holds little more than what is in flight."""
    transport = _transport(redis_server)
    total, batch = 10_000, 200
    acked = 0
    longest = 0
    progress = trio.Event()
    with trio.fail_after(30):
        async with (
            transport.connect("sender") as sender,
            transport.connect("receiver") as receiver,
            open_redis_connection(redis_server.url) as probe,
        ):
            await receiver.claim("sink")

            async def consume() -> None:
                nonlocal acked, progress
                while True:
                    delivery = await _delivery(receiver)
                    await receiver.ack(delivery)
                    acked += 1
                    progress.set()
                    progress = trio.Event()

            async def wait_acked(count: int) -> None:
                while acked < count:
                    await progress.wait()

            async with trio.open_nursery() as nursery:
                for _ in range(8):  # acks from several tasks share one pipelined connection
                    nursery.start_soon(consume)
                for start in range(0, total, batch):
                    await wait_acked(start)  # paced like jobs: the next batch after the answers
                    length = await probe.execute("XLEN", transport.prefix + "inbox:sink")
                    assert isinstance(length, int)
                    longest = max(longest, length)
                    await sender.send_batch(
                        [("sink", str(i).encode()) for i in range(start, start + batch)]
                    )
                await wait_acked(total)
                nursery.cancel_scope.cancel()
            # Acks are written in batches just after ack() returns: wait for the last one.
            for _ in range(100):
                if await probe.execute("XLEN", transport.prefix + "inbox:sink") == 0:
                    break
                await trio.sleep(0.01)
            assert await probe.execute("XLEN", transport.prefix + "inbox:sink") == 0
    # Acks are written within a few milliseconds of ack(), so a little more than one batch may
    # be there when measured; an unbounded stream would reach 10,000.
    assert longest <= 5 * batch, longest


async def test_send_with_ack_settles_atomically(redis_server: RedisServer) -> None:
    """send(..., ack=delivery) writes the answer and acknowledges the request together."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("client") as client, transport.connect("server") as server:
            await client.claim("client")
            await server.claim("server")
            await client.send("server", b"request")
            request = await _delivery(server)
            await server.send("client", b"answer", control=True, ack=request)
            assert (await _delivery(client)).packet == b"answer"
            pending = await _redis(
                redis_server, "XPENDING", transport.prefix + "inbox:server", "trio-actors"
            )
            assert isinstance(pending, list) and pending[0] == 0
            with pytest.raises(UnknownRecipient):
                await server.send("nobody", b"x", ack=request)


async def test_control_packets_skip_a_full_window(redis_server: RedisServer) -> None:
    """A name's window holds back ordinary packets until acked; control packets pass."""
    transport = _transport(redis_server, window=2)
    with trio.fail_after(10):
        async with transport.connect("a") as a, transport.connect("b") as b:
            await b.claim("slow")
            await a.send_batch([("slow", b"1"), ("slow", b"2"), ("slow", b"3")])
            first, second = await _delivery(b), await _delivery(b)
            assert [first.packet, second.packet] == [b"1", b"2"]
            await a.send("slow", b"urgent", control=True)
            assert (await _delivery(b)).packet == b"urgent"
            with trio.move_on_after(0.3) as waited:
                await _delivery(b)
            assert waited.cancelled_caught, "a third packet passed a window of 2"
            await b.ack(first)
            assert (await _delivery(b)).packet == b"3"


async def test_packets_of_a_leaving_peer_arrive_before_its_notice(
    redis_server: RedisServer,
) -> None:
    """What a peer sent before closing is received before the notice that it left, even
    when the reads are cut short by COUNT."""
    transport = _transport(redis_server, read_count=16)
    with trio.fail_after(10):
        async with transport.connect("receiver") as receiver:
            await receiver.claim("sink")
            async with transport.connect("leaver") as leaver:
                await leaver.send_batch([("sink", str(i).encode()) for i in range(100)])
            await trio.sleep(HEARTBEAT)  # everything is in Redis before the first read below
            received: list[bytes] = []
            while True:
                item = await receiver.receive()
                if isinstance(item, PeerLost):
                    break
                assert isinstance(item.packet, bytes)
                received.append(item.packet)
                await receiver.ack(item)
            assert item.system == "leaver" and not item.crashed
            assert received == [str(i).encode() for i in range(100)]


async def test_lapsed_heartbeat_is_reported_within_two_periods(
    redis_server: RedisServer,
) -> None:
    """A node that stops without goodbye is reported crashed within two heartbeat periods."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("watcher") as watcher:
            async with transport.connect("victim") as victim:
                await victim.claim("victim-actor")
                await trio.sleep(HEARTBEAT)  # the watcher has seen the victim alive
                victim._halt()  # type: ignore[attr-defined]
                halted_at = trio.current_time()
                notice = await _peer_lost(watcher)
                elapsed = trio.current_time() - halted_at
            assert (notice.system, notice.crashed, notice.reason) == (
                "victim",
                True,
                "heartbeat expired",
            )
            # Promised: two periods; allow scheduling slack on a loaded machine on top.
            assert elapsed < 2 * HEARTBEAT + 0.3, elapsed
            with pytest.raises(UnknownRecipient):
                await watcher.send("victim-actor", b"too late")


async def test_live_slow_consumer_is_never_reclaimed(redis_server: RedisServer) -> None:
    """Pending entries of a live node stay with it, whatever their idle time; once its
    heartbeat expires they move to the name's next holder, marked reclaimed, exactly once."""
    transport = _transport(redis_server)
    with trio.fail_after(15):
        async with transport.connect("sender") as sender, transport.connect("heir") as heir:
            async with transport.connect("slow") as slow:
                await slow.claim("job")
                await sender.send("job", b"long job")
                held = await _delivery(slow)
                await slow.release("job")
                await trio.sleep(4 * HEARTBEAT)  # idle for longer than any timer
                await heir.claim("job")
                with trio.move_on_after(3 * HEARTBEAT) as waited:
                    await _delivery(heir)
                assert waited.cancelled_caught, "a live consumer's entry was reclaimed"
                await heir.release("job")
                slow._halt()  # type: ignore[attr-defined]
                await trio.sleep(2 * HEARTBEAT)
                assert held.packet == b"long job"

            async def claim_and_take(link: TransportLink, found: list[Delivery]) -> None:
                try:
                    await link.claim("job")
                except NameClaimed:
                    return
                found.append(await _delivery(link))

            found: list[Delivery] = []
            async with transport.connect("rival") as rival:
                with trio.move_on_after(1.5):
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(claim_and_take, heir, found)
                        nursery.start_soon(claim_and_take, rival, found)
            assert [(d.packet, d.reclaimed) for d in found] == [(b"long job", True)]


async def test_entry_missing_fields_goes_to_dead_letter(redis_server: RedisServer) -> None:
    """An inbox entry without a packet is counted, dead-lettered, and reading goes on."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("a") as a, transport.connect("b") as b:
            await b.claim("inbox")
            await _redis(redis_server, "XADD", transport.prefix + "inbox:inbox", "*", "junk", "1")
            await a.send("inbox", b"fine")
            assert (await _delivery(b)).packet == b"fine"
            assert b.statistics().dead_letters == 1  # type: ignore[attr-defined]
            dead = await _redis(redis_server, "XRANGE", transport.prefix + "dead-letter", "-", "+")
            assert isinstance(dead, list) and len(dead) == 1
            assert await _redis(redis_server, "XLEN", transport.prefix + "inbox:inbox") <= 1  # type: ignore[operator]


@pytest.mark.redis_server(appendonly=True)
async def test_redis_restart_with_aof_loses_nothing(redis_server: RedisServer) -> None:
    """Redis killed and restarted with its append-only file mid-run: every packet arrives."""
    _need_killable(redis_server)
    transport = _transport(redis_server)
    total = 300
    received: set[bytes] = set()
    with trio.fail_after(20):
        async with transport.connect("sender") as sender, transport.connect("receiver") as rx:
            await rx.claim("sink")

            async def consume() -> None:
                while len(received) < total:
                    delivery = await _delivery(rx)
                    assert isinstance(delivery.packet, bytes)
                    received.add(delivery.packet)
                    await rx.ack(delivery)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                for index in range(total):
                    if index == total // 2:
                        redis_server.kill()
                        nursery.start_soon(redis_server.restart)
                    await sender.send("sink", str(index).encode())
            assert sender.statistics().redis_restarts == 0  # type: ignore[attr-defined]
    assert received == {str(index).encode() for index in range(total)}


@pytest.mark.redis_server(appendonly=True)
async def test_outage_longer_than_the_ttl_loses_no_peer(redis_server: RedisServer) -> None:
    """Redis down for longer than the heartbeat TTL, back with its data: nobody is reported
    lost (peers get two TTLs to refresh their heartbeats before anyone sweeps)."""
    _need_killable(redis_server)
    transport = _transport(redis_server)
    with trio.fail_after(15):
        async with transport.connect("a") as a, transport.connect("b") as b:
            await b.claim("b-actor")
            await trio.sleep(HEARTBEAT)
            redis_server.kill()
            await trio.sleep(3 * HEARTBEAT)  # every heartbeat key has expired meanwhile
            await redis_server.restart()
            await a.send("b-actor", b"after the outage")
            assert (await _delivery(b)).packet == b"after the outage"
            with trio.move_on_after(4 * HEARTBEAT):
                notice = await _peer_lost(a)
                raise AssertionError(f"a peer was reported lost: {notice!r}")
            assert a.statistics().peers == 1  # type: ignore[attr-defined]


async def test_redis_restart_without_persistence_reports_peers(
    redis_server: RedisServer,
) -> None:
    """Redis restarted without its data: peers are reported lost with a reason, names come back."""
    _need_killable(redis_server)
    transport = _transport(redis_server)
    with trio.fail_after(15):
        async with transport.connect("a") as a, transport.connect("b") as b:
            await a.claim("a-actor")
            await b.claim("b-actor")
            await trio.sleep(HEARTBEAT)  # each has seen the other at a heartbeat
            await redis_server.restart()
            restarted_at = trio.current_time()
            for link, peer in ((a, "b"), (b, "a")):
                notice = await _peer_lost(link)
                assert (notice.system, notice.crashed) == (peer, True)
                assert notice.reason is not None
                assert notice.reason.startswith("redis restarted without persistence")
            # Promised: within one heartbeat period of Redis answering; allow slack.
            assert trio.current_time() - restarted_at < 3 * HEARTBEAT + 1.0
            while True:  # b may not have claimed its name again yet
                try:
                    await a.send("b-actor", b"after the restart")
                    break
                except UnknownRecipient:
                    await trio.sleep(0.02)
            assert (await _delivery(b)).packet == b"after the restart"


async def test_reader_reconnects_and_rereads_its_pending_entries(
    redis_server: RedisServer,
) -> None:
    """When the reading connection is killed, the link reconnects, reads its unacknowledged
    entries again (at-least-once) and goes on receiving."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("a") as a, transport.connect("b") as b:
            await b.claim("inbox")
            await a.send("inbox", b"first")
            first = await _delivery(b)
            clients = await _redis(redis_server, "CLIENT", "LIST")
            assert isinstance(clients, bytes)
            reader_name = f"name=trio-actors:{b.node}:reader".encode()  # type: ignore[attr-defined]
            (line,) = [line for line in clients.splitlines() if reader_name in line.split()]
            client_id = line.split()[0].removeprefix(b"id=")
            assert await _redis(redis_server, "CLIENT", "KILL", "ID", client_id) == 1
            again = await _delivery(b)
            assert (again.packet, again.token) == (first.packet, first.token)
            await b.ack(again)
            await a.send("inbox", b"second")
            assert (await _delivery(b)).packet == b"second"


async def test_lost_group_is_created_again(redis_server: RedisServer) -> None:
    """A stream whose consumer group vanished (NOGROUP) gets it back; delivery goes on."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("a") as a, transport.connect("b") as b:
            await b.claim("inbox")
            await _redis(
                redis_server, "XGROUP", "DESTROY", transport.prefix + "inbox:inbox", "trio-actors"
            )
            await a.send("inbox", b"after")
            assert (await _delivery(b)).packet == b"after"


async def test_restarted_system_takes_its_name_after_the_old_heartbeat_expires(
    redis_server: RedisServer,
) -> None:
    """A system restarted under the same name is refused while its predecessor's heartbeat
    lives, then connects; peers hear that the predecessor crashed."""
    transport = _transport(redis_server)
    with trio.fail_after(10):
        async with transport.connect("watcher") as watcher:
            async with transport.connect("worker") as old:
                old._halt()  # type: ignore[attr-defined]
                with pytest.raises(SystemNameTaken):
                    async with transport.connect("worker"):
                        pass
            while True:
                try:
                    async with transport.connect("worker") as new:
                        await new.claim("worker-actor")
                        break
                except SystemNameTaken:
                    await trio.sleep(HEARTBEAT / 4)
            notice = await _peer_lost(watcher)
            assert (notice.system, notice.crashed) == ("worker", True)


_CHILD = """
import sys, trio
from transports import RedisTransport

async def main():
    transport = RedisTransport(sys.argv[1], namespace=sys.argv[3], heartbeat=float(sys.argv[2]))
    async with transport.connect("child") as link:
        await link.claim("child-actor")
        print("ready", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


async def test_killed_process_is_reported_within_two_heartbeats(
    redis_server: RedisServer,
) -> None:
    """A process killed with SIGKILL (no goodbye) is reported crashed within two periods."""
    transport = _transport(redis_server)
    with trio.fail_after(20):
        async with transport.connect("watcher") as watcher:
            child = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    redis_server.url,
                    str(HEARTBEAT),
                    transport.namespace,
                ],
                stdout=subprocess.PIPE,
            )
            try:
                assert child.stdout is not None
                output = b""
                while b"ready" not in output:
                    chunk = await child.stdout.receive_some()
                    assert chunk, "the child process ended before it was ready"
                    output += chunk
                await trio.sleep(HEARTBEAT)  # the watcher has seen the child alive
                child.send_signal(signal.SIGKILL)
                killed_at = trio.current_time()
                notice = await _peer_lost(watcher)
                elapsed = trio.current_time() - killed_at
            finally:
                child.kill()
                await child.wait()
                if child.stdout is not None:
                    await child.stdout.aclose()
            assert (notice.system, notice.crashed) == ("child", True)
            assert elapsed < 2 * HEARTBEAT + 0.3, elapsed
            with pytest.raises(UnknownRecipient):
                await watcher.send("child-actor", b"too late")
