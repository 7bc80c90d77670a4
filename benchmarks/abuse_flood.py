#!/usr/bin/env python3
"""One attacker for the abuse scenario (issue 22): floods a zorg.live
LiveServerHTTP on loopback from its own source address for a bounded
time, reconnecting whenever it is closed, and prints what the server
answered as JSON.

    abuse_flood.py --port P --kind ping|input|attach-detach|requests|
        connections --seconds 60 [--page /@@bench.html] [--source 127.0.0.2]

Kinds: ping, input, attach-detach: one anonymous WebSocket at a time
sending those messages as fast as it can (and reading what comes back);
requests: pipelined GETs of @@live-health on one kept-alive connection;
connections: as many idle connections as the server takes.
"""

import argparse
import json
import re
import select
import socket
import threading
import time

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

HOST = '127.0.0.1'


def frame(message):
    return Frame(Opcode.TEXT, json.dumps(message).encode()).serialize(
        mask=True)


class Flood:
    def __init__(self, args):
        self.args = args
        self.stop = time.monotonic() + args.seconds
        self.stats = {'kind': args.kind, 'connections': 0, 'refused': {},
                      'closed': {}, 'sent bytes': 0}

    def count(self, table, key):
        self.stats[table][str(key)] = self.stats[table].get(str(key), 0) + 1

    def connect(self):
        sock = socket.create_connection((HOST, self.args.port), 10,
                                        source_address=(self.args.source, 0))
        sock.settimeout(None)
        self.stats['connections'] += 1
        return sock

    def render(self):
        """A page of the attacker's own (anonymous): its id."""
        sock = self.connect()
        sock.sendall(b'GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close'
                     b'\r\n\r\n' % (self.args.page.encode(), HOST.encode(),
                                    self.args.port))
        data = b''
        while True:
            more = sock.recv(65536)
            if not more:
                break
            data += more
        sock.close()
        match = re.search(rb'data-uuid="([^"]+)"', data)
        if match is None:
            self.count('refused', data.split(b' ', 2)[1].decode())
            return None
        return match.group(1).decode()

    def flood(self, sock, data, received):
        """Send `data` on `sock` again and again until the server ends
        the connection, `received(bytes)` (in a reader thread) says to
        stop, or the time is up. (No socket timeout: the sender blocks as
        long as the server does not read, which is the point.)"""
        done = threading.Event()

        def read():
            try:
                while not done.is_set():
                    if not select.select([sock], [], [], 1)[0]:
                        continue
                    chunk = sock.recv(65536)
                    if not chunk or received(chunk):
                        break
            except OSError:
                received(None)
            finally:
                done.set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while not done.is_set() and time.monotonic() < self.stop:
                sock.sendall(data)
                self.stats['sent bytes'] += len(data)
        except OSError:
            pass
        done.set()
        reader.join(5)
        sock.close()

    def websocket(self, messages):
        """Send `messages` (bytes) over one WebSocket until it is closed;
        the close code (or the refusal's status) is counted."""
        protocol = ClientProtocol(parse_uri('ws://%s:%d/@@live' % (
            HOST, self.args.port)))
        sock = self.connect()
        protocol.send_request(protocol.connect())
        for data in protocol.data_to_send():
            sock.sendall(data)
        ended = []

        def received(data):
            if data is None:
                ended.append('reset')
                return True
            protocol.receive_data(data)
            protocol.events_received()
            if protocol.handshake_exc is not None:
                self.count('refused', getattr(getattr(
                    protocol.handshake_exc, 'response', None),
                    'status_code', 'handshake'))
                ended.append(None)
                return True
            if protocol.close_rcvd is not None:
                ended.append(protocol.close_rcvd.code)
                return True
            return False
        self.flood(sock, messages, received)
        if ended != [None]:
            self.count('closed', ended[0] if ended else 'eof')

    def requests(self):
        sock = self.connect()
        request = (b'GET /@@live-health HTTP/1.1\r\nHost: %s:%d\r\n\r\n'
                   % (HOST.encode(), self.args.port)) * 20
        seen = bytearray()

        def received(data):
            if data:
                seen.extend(data[-200:])
                del seen[:-400]
            return False
        self.flood(sock, request, received)
        last = bytes(seen).rsplit(b'HTTP/1.1 ', 1)
        self.count('closed', last[1][:3].decode() if len(last) == 2
                   else 'none')

    def connections(self):
        """Open connections without pause; every 100, see which the
        server answered (refused) or closed (header-timeout)."""
        held = []
        try:
            while time.monotonic() < self.stop:
                try:
                    held.append(self.connect())
                except OSError:
                    self.count('refused', 'connect')
                    time.sleep(0.1)
                if len(held) % 100 and time.monotonic() < self.stop:
                    continue
                time.sleep(0.05)
                for sock in list(held):
                    sock.setblocking(False)
                    try:
                        data = sock.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b''
                    self.count('refused', data.split(b' ', 2)[1].decode()
                               if data.startswith(b'HTTP/') else 'closed')
                    held.remove(sock)
                    sock.close()
        finally:
            self.stats['held at the end'] = len(held)
            for sock in held:
                sock.close()

    def run(self):
        kind = self.args.kind
        while time.monotonic() < self.stop:
            if kind == 'requests':
                self.requests()
            elif kind == 'connections':
                self.connections()
            else:
                first = b''
                if kind != 'ping':
                    uuid = self.render()
                    if uuid is None:
                        time.sleep(0.2)
                        continue
                    url = 'http://%s:%d%s/@@client/%s' % (
                        HOST, self.args.port, self.args.page, uuid)
                    first = frame({'type': 'attach', 'page': 1,
                                   'uuid': uuid, 'url': url})
                if kind == 'ping':
                    messages = frame({'type': 'ping'}) * 500
                elif kind == 'input':
                    messages = b''.join(frame({
                        'type': 'input', 'page': 1, 'id': 'i%d' % n,
                        'handler': 'noop', 'arguments': []})
                        for n in range(200))
                else:
                    messages = (frame({
                        'type': 'attach', 'page': 2, 'uuid': uuid,
                        'lastEventId': None, 'url': url}) + frame({
                            'type': 'detach', 'page': 2})) * 200
                self.websocket(first + messages)
        return self.stats


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--kind', required=True, choices=[
        'ping', 'input', 'attach-detach', 'requests', 'connections'])
    p.add_argument('--seconds', type=float, default=60)
    p.add_argument('--page', default='/@@bench.html')
    p.add_argument('--source', default='127.0.0.2')
    args = p.parse_args()
    print(json.dumps(Flood(args).run()), flush=True)


if __name__ == '__main__':
    main()
