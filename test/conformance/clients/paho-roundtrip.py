#!/usr/bin/python3
"""Round trip through the broker under test with Eclipse Paho (Debian python3-paho-mqtt 1.6.1).

Usage: paho-roundtrip.py HOST PORT {311|5} TOPIC_PREFIX

A subscriber takes PREFIX/# at QoS 2; a publisher sends one message at each QoS and a retained one
(with a user property on v5); a second subscriber then receives the retained message. Prints one JSON
object with what arrived and exits 0, or prints an error and exits 1. Every wait has a deadline.
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEADLINE_S = 5.0

host, port, version, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
v5 = version == "5"
protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311


def fail(what):
    print(json.dumps({"error": what}))
    sys.exit(1)


def make_client(name):
    client_id = f"{name}-{prefix.replace('/', '-')}"
    if v5:
        return mqtt.Client(client_id=client_id, protocol=protocol)
    return mqtt.Client(client_id=client_id, clean_session=True, protocol=protocol)


def connect(client):
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    if v5:
        client.connect(host, port, keepalive=30, clean_start=True)
    else:
        client.connect(host, port, keepalive=30)
    client.loop_start()
    if not connected.wait(DEADLINE_S):
        fail("no CONNACK")


def record(msg):
    entry = {"topic": msg.topic, "qos": msg.qos, "retain": bool(msg.retain), "payload": msg.payload.decode()}
    props = getattr(msg, "properties", None)
    if props is not None and hasattr(props, "UserProperty"):
        entry["userProperties"] = [list(pair) for pair in props.UserProperty]
    return entry


def subscribe(client, topic):
    done = threading.Event()
    client.on_subscribe = lambda *args: done.set()
    client.subscribe(topic, qos=2)
    if not done.wait(DEADLINE_S):
        fail(f"no SUBACK for {topic}")


live, retained = [], []
got_live, got_retained = threading.Event(), threading.Event()

sub = make_client("sub")
connect(sub)


def on_live(client, userdata, msg):
    live.append(record(msg))
    if len(live) >= 4:
        got_live.set()


sub.on_message = on_live
subscribe(sub, f"{prefix}/#")

pub = make_client("pub")
connect(pub)
for qos in (0, 1, 2):
    pub.publish(f"{prefix}/q{qos}", f"paho qos {qos}", qos=qos).wait_for_publish(DEADLINE_S)
props = None
if v5:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("origin", "paho"), ("version", "5")]
pub.publish(f"{prefix}/kept", "paho retained", qos=1, retain=True, properties=props).wait_for_publish(DEADLINE_S)
if not got_live.wait(DEADLINE_S):
    fail(f"only {len(live)} live messages")

late = make_client("late")
connect(late)


def on_retained(client, userdata, msg):
    retained.append(record(msg))
    got_retained.set()


late.on_message = on_retained
subscribe(late, f"{prefix}/kept")
if not got_retained.wait(DEADLINE_S):
    fail("no retained message")

for client in (sub, late):
    client.disconnect()
    client.loop_stop()
pub.publish(f"{prefix}/kept", b"", qos=1, retain=True).wait_for_publish(DEADLINE_S)
pub.disconnect()
pub.loop_stop()
print(json.dumps({"live": sorted(live, key=lambda m: m["topic"]), "retained": retained}))
