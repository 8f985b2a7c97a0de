#!/usr/bin/python3
"""A pipelined Python sink, the peer bench/run compares rkbridge with.

What a careful engineer would write with Debian 12's own packages (python3-confluent-kafka 1.7,
python3-redis 4.3): consume up to BATCH records, SET each as PREFIX + key in one Redis pipeline
without MULTI, and commit the consumed offsets only after the pipeline replied: at-least-once,
like rkbridge's sink with batch.size=1000. A reply error in the pipeline raises, so nothing
after it is committed. Runs until SIGTERM or SIGINT, then closes the consumer (a last
synchronous commit of what was written).

    bench/python_sink.py BOOTSTRAP TOPIC GROUP REDIS_PORT [PREFIX [BATCH]]
"""
import signal
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException
import redis


def main():
    if not 5 <= len(sys.argv) <= 7:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    bootstrap, topic, group, port = sys.argv[1:5]
    prefix = (sys.argv[5] if len(sys.argv) > 5 else topic + ":").encode()
    batch = int(sys.argv[6]) if len(sys.argv) > 6 else 1000

    running = True

    def stop(signum, frame):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    consumer.subscribe([topic])
    r = redis.Redis(host="127.0.0.1", port=int(port))
    pipe = r.pipeline(transaction=False)
    while running:
        msgs = consumer.consume(num_messages=batch, timeout=0.5)
        if not msgs:
            continue
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            pipe.set(prefix + m.key(), m.value())
        pipe.execute()  # raises on the first error reply: nothing after it is committed
        consumer.commit(asynchronous=True)  # the positions past what Redis just acknowledged
    consumer.close()


if __name__ == "__main__":
    main()
