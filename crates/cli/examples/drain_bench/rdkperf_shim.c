/*
 * Link-time shim for librdkafka's examples/rdkafka_performance.c, so the
 * drain benchmark can run the C producer at steady state on the same
 * workload as the other measurements (bench/rdkafka_performance.sh links it
 * with -Wl,--wrap=... for the five functions below).
 *
 * Without RDKPERF_BENCH in the environment every wrapper calls straight
 * through: the binary is stock rdkafka_performance. With RDKPERF_BENCH=1:
 *
 * - warm-up: rd_kafka_topic_new (the tool's last call before it starts its
 *   clock, cnt.t_start) also produces one record and flushes it, so broker
 *   connection, topic metadata and the idempotent producer id are in place
 *   and one produce round trip is done before the timed part, as for the
 *   BaseProducer baseline. Its delivery report is swallowed (the tool never
 *   sees it), so the tool's counts and its end detection are unchanged.
 *   RDKPERF_COLD=1 skips it (the tool's clock then starts right after
 *   rd_kafka_new, with connection, metadata and producer id ahead).
 * - handshake: after the warm-up the shim writes "rdkperf-shim: warm" to
 *   stderr and waits for one byte on stdin; in rd_kafka_topic_destroy (the
 *   tool's first call after its last delivery report) it writes
 *   "rdkperf-shim: done" and waits again. The benchmark reads the CPU
 *   counters of this process and of the broker while it waits, so the CPU
 *   window is the tool's timed window.
 * - payloads: the tool sends one fixed buffer for every message (its -m
 *   pattern repeated), which lz4 compresses to almost nothing across a
 *   batch. The shim passes each rd_kafka_produce a different slice of a
 *   16 MiB buffer of random hex digits generated during the warm-up (like
 *   the drain's and the BaseProducer's payloads) with RD_KAFKA_MSG_F_COPY,
 *   the copy rust-rdkafka's send and the drain make. Unless the tool was
 *   given -D (RD_KAFKA_MSG_F_FREE), which is passed through untouched.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rdkafka.h"

rd_kafka_topic_t *__real_rd_kafka_topic_new(rd_kafka_t *rk, const char *topic,
                                            rd_kafka_topic_conf_t *conf);
void __real_rd_kafka_topic_destroy(rd_kafka_topic_t *rkt);
int __real_rd_kafka_produce(rd_kafka_topic_t *rkt, int32_t partition,
                            int msgflags, void *payload, size_t len,
                            const void *key, size_t keylen, void *msg_opaque);
void __real_rd_kafka_conf_set_dr_msg_cb(
    rd_kafka_conf_t *conf,
    void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *));

#define RING_BYTES (16u << 20)

static int bench = -1;
static char *ring;
static size_t ring_off;
static void (*app_dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *);
static char warm_marker;
static int warm_delivered;
static rd_kafka_resp_err_t warm_err;

static int bench_mode(void) {
        if (bench < 0) {
                const char *v = getenv("RDKPERF_BENCH");
                bench         = v && *v && strcmp(v, "0") != 0;
        }
        return bench;
}

/* Tells the benchmark where we are and waits for its go-ahead. */
static void handshake(const char *what) {
        char c;
        fprintf(stderr, "rdkperf-shim: %s\n", what);
        fflush(stderr);
        if (read(0, &c, 1) != 1) {
                fprintf(stderr, "rdkperf-shim: no go-ahead on stdin\n");
                exit(2);
        }
}

static void shim_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        if (m->_private == &warm_marker) {
                warm_delivered = 1;
                warm_err       = m->err;
                return;
        }
        if (app_dr_cb)
                app_dr_cb(rk, m, opaque);
}

void __wrap_rd_kafka_conf_set_dr_msg_cb(
    rd_kafka_conf_t *conf,
    void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *)) {
        if (!bench_mode()) {
                __real_rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
                return;
        }
        app_dr_cb = dr_msg_cb;
        __real_rd_kafka_conf_set_dr_msg_cb(conf, shim_dr);
}

rd_kafka_topic_t *__wrap_rd_kafka_topic_new(rd_kafka_t *rk, const char *topic,
                                            rd_kafka_topic_conf_t *conf) {
        rd_kafka_topic_t *rkt = __real_rd_kafka_topic_new(rk, topic, conf);
        uint64_t x            = 0x9e3779b97f4a7c15ull;
        static char warm[200];
        size_t i;

        if (!bench_mode() || !rkt)
                return rkt;
        if (!app_dr_cb) {
                fprintf(stderr, "rdkperf-shim: RDKPERF_BENCH needs delivery "
                                "reports (do not pass -N)\n");
                exit(2);
        }
        ring = malloc(RING_BYTES);
        if (!ring) {
                fprintf(stderr, "rdkperf-shim: out of memory\n");
                exit(2);
        }
        for (i = 0; i < RING_BYTES; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ring[i] = "0123456789abcdef"[x & 15];
        }
        if (getenv("RDKPERF_COLD")) {
                handshake("warm");
                return rkt;
        }
        memset(warm, 'w', sizeof(warm));
        if (__real_rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA,
                                    RD_KAFKA_MSG_F_COPY, warm, sizeof(warm),
                                    NULL, 0, &warm_marker) == -1) {
                fprintf(stderr, "rdkperf-shim: warm-up produce: %s\n",
                        rd_kafka_err2str(rd_kafka_last_error()));
                exit(2);
        }
        rd_kafka_flush(rk, 30000);
        if (!warm_delivered || warm_err) {
                fprintf(stderr, "rdkperf-shim: warm-up record %s\n",
                        warm_delivered ? rd_kafka_err2str(warm_err)
                                       : "not delivered in 30 s");
                exit(2);
        }
        handshake("warm");
        return rkt;
}

int __wrap_rd_kafka_produce(rd_kafka_topic_t *rkt, int32_t partition,
                            int msgflags, void *payload, size_t len,
                            const void *key, size_t keylen, void *msg_opaque) {
        int r;

        if (!ring || (msgflags & RD_KAFKA_MSG_F_FREE) || len > RING_BYTES)
                return __real_rd_kafka_produce(rkt, partition, msgflags,
                                               payload, len, key, keylen,
                                               msg_opaque);
        if (ring_off + len > RING_BYTES)
                ring_off = 0;
        r = __real_rd_kafka_produce(rkt, partition,
                                    msgflags | RD_KAFKA_MSG_F_COPY,
                                    ring + ring_off, len, key, keylen,
                                    msg_opaque);
        if (r == 0)
                ring_off += len;
        return r;
}

void __wrap_rd_kafka_topic_destroy(rd_kafka_topic_t *rkt) {
        if (bench_mode() && ring)
                handshake("done");
        __real_rd_kafka_topic_destroy(rkt);
}
