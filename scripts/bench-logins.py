#!/usr/bin/env python3
"""Logins per second with real password hashing: registers N accounts on a running server started
with `--auth registered`, then logs them all in at once and times it.

    suda-server --listen 127.0.0.1:7420 --auth registered --data-dir /tmp/acc --message-rate 0 &
    scripts/bench-logins.py 7420 200
"""
import socket, struct, time, sys, threading
PORT=int(sys.argv[1]); N=int(sys.argv[2])
def pkt(t, body): return struct.pack('<HH', len(body)+4, t) + body
def s8(s): b=s.encode(); return bytes([len(b)])+b
def recv(s):
    h=b''
    while len(h)<4: h+=s.recv(4-len(h))
    size,t=struct.unpack('<HH',h); body=b''
    while len(body)<size-4: body+=s.recv(size-4-len(body))
    return t, body
def register(i):
    s=socket.create_connection(('127.0.0.1',PORT)); s.sendall(pkt(0x201, s8(f'user{i}')+s8('password-%d'%i))); t,b=recv(s); assert b[0]==0,(t,b); s.close()
socks=[]
def login(i, out):
    s=socket.create_connection(('127.0.0.1',PORT)); s.sendall(pkt(1, s8(f'user{i}')+s8('password-%d'%i))); t,b=recv(s); assert b[0]==0,(t,b); out.append(s)
t0=time.time(); ths=[threading.Thread(target=register,args=(i,)) for i in range(N)]; [t.start() for t in ths]; [t.join() for t in ths]; t1=time.time()
print(f"{N} registrations in {t1-t0:.2f} s: {N/(t1-t0):.0f}/s")
out=[]; t0=time.time(); ths=[threading.Thread(target=login,args=(i,out)) for i in range(N)]; [t.start() for t in ths]; [t.join() for t in ths]; t1=time.time()
print(f"{N} logins (Argon2id m=19MiB t=2 p=1) in {t1-t0:.2f} s: {N/(t1-t0):.0f} logins/s")
