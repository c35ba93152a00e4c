/*
 * Answering a waiting fetch as soon as data arrives, in librdkafka's mock cluster (the
 * embedded broker).
 *
 * A consumer with nothing left to read sends a Fetch that may wait up to `fetch.wait.max.ms`.
 * Apache Kafka parks such a fetch and answers it the moment a produce appends to one of the
 * partitions it asked for. The mock cluster cannot park a request in its one thread: it
 * answers at once with an empty response and holds that response back until the wait runs
 * out (`rkbuf_ts_retry`, honoured when the connection writes out). Data produced meanwhile
 * waits with it, so every hop of a saga paid up to the fetch wait, and one order alone took
 * ~5 of them.
 *
 * Two definitions take the originals' place at link time (`-Wl,--wrap`, see build.rs):
 *  - the response of every Fetch that may wait carries what it waits for: each partition it
 *    asked for and from which offset, read from the request before the handler reads it, and
 *    freed with the response (the buffer's `make_opaque`, unused by the mock's responses);
 *  - after a produce appends to a partition, each response still held back whose fetch asked
 *    for that partition below its new end is released: it goes out at the connection's next
 *    write, the consumer finds nothing new in it and fetches again at once, and gets the data.
 * The released response is the very one that would have gone out when the wait ran out, only
 * earlier; no message is added, lost or reordered. Everything runs on the cluster's thread,
 * which owns the connections and partitions.
 * It is compiled against the headers of the very librdkafka build it is linked with.
 */
#include "rdkafka_int.h"
#include "rdkafka_mock_int.h"
#include "rdkafka_transport_int.h"

/* A partition a waiting fetch asked for, and the offset it asked from. */
struct watched_partition {
        int32_t partition;
        int64_t offset;
};

/* A topic a waiting fetch asked for: by name up to Fetch v12, by id from v13 on. */
struct watched_topic {
        char *name;
        rd_kafka_Uuid_t id;
        int partition_cnt;
        struct watched_partition *partitions;
};

/* What the response of one fetch waits for. */
struct fetch_watch {
        rd_bool_t by_id;
        int topic_cnt;
        struct watched_topic topics[];
};

rd_kafka_buf_t *__real_rd_kafka_mock_buf_new_response(const rd_kafka_buf_t *request);

rd_kafka_resp_err_t
__real_rd_kafka_mock_partition_log_append(rd_kafka_mock_partition_t *mpart,
                                          const rd_kafkap_bytes_t *records,
                                          const rd_kafkap_str_t *TransactionalId,
                                          int64_t *BaseOffset);

static void fetch_watch_destroy(void *opaque) {
        struct fetch_watch *watch = opaque;
        int i;

        if (!watch)
                return;
        for (i = 0; i < watch->topic_cnt; i++) {
                rd_free(watch->topics[i].name);
                rd_free(watch->topics[i].partitions);
        }
        rd_free(watch);
}

/*
 * Reads the partitions and offsets of a Fetch request, as the mock's Fetch handler does, from
 * a copy of the request so that the handler still reads it from the start. NULL when the fetch
 * will not wait or the request does not parse (the handler then answers the parse error).
 */
static struct fetch_watch *fetch_watch_read(const rd_kafka_buf_t *request) {
        const int log_decode_errors = 0;
        rd_kafka_buf_t copy         = *request;
        rd_kafka_buf_t *rkbuf       = &copy;
        int16_t version             = rkbuf->rkbuf_reqhdr.ApiVersion;
        struct fetch_watch *watch   = NULL;
        int32_t skipped32, MaxWait, TopicsCnt;
        int64_t skipped64;
        int8_t skipped8;
        int t, p;

        if (version <= 14)
                rd_kafka_buf_read_i32(rkbuf, &skipped32); /* ReplicaId */
        rd_kafka_buf_read_i32(rkbuf, &MaxWait);
        if (MaxWait <= 0)
                return NULL;
        rd_kafka_buf_read_i32(rkbuf, &skipped32); /* MinBytes */
        if (version >= 3)
                rd_kafka_buf_read_i32(rkbuf, &skipped32); /* MaxBytes */
        if (version >= 4)
                rd_kafka_buf_read_i8(rkbuf, &skipped8); /* IsolationLevel */
        if (version >= 7) {
                rd_kafka_buf_read_i32(rkbuf, &skipped32); /* SessionId */
                rd_kafka_buf_read_i32(rkbuf, &skipped32); /* Epoch */
        }

        rd_kafka_buf_read_arraycnt(rkbuf, &TopicsCnt, RD_KAFKAP_TOPICS_MAX);
        TopicsCnt = RD_MAX(TopicsCnt, 0);
        watch = rd_calloc(1, sizeof(*watch) + TopicsCnt * sizeof(watch->topics[0]));
        watch->by_id = version >= 13;

        for (t = 0; t < TopicsCnt; t++) {
                struct watched_topic *topic = &watch->topics[t];
                int32_t PartitionCnt;

                watch->topic_cnt = t + 1; /* What there is gets freed on a parse error. */
                if (watch->by_id) {
                        rd_kafka_buf_read_uuid(rkbuf, &topic->id);
                } else {
                        rd_kafkap_str_t Topic = RD_KAFKAP_STR_INITIALIZER;
                        rd_kafka_buf_read_str(rkbuf, &Topic);
                        if (!RD_KAFKAP_STR_IS_NULL(&Topic))
                                topic->name = RD_KAFKAP_STR_DUP(&Topic);
                }

                rd_kafka_buf_read_arraycnt(rkbuf, &PartitionCnt,
                                           RD_KAFKAP_PARTITIONS_MAX);
                PartitionCnt = RD_MAX(PartitionCnt, 0);
                topic->partitions =
                    rd_calloc(RD_MAX(PartitionCnt, 1), sizeof(*topic->partitions));

                for (p = 0; p < PartitionCnt; p++) {
                        struct watched_partition *part = &topic->partitions[p];

                        rd_kafka_buf_read_i32(rkbuf, &part->partition);
                        if (version >= 9)
                                rd_kafka_buf_read_i32(rkbuf, &skipped32); /* CurrentLeaderEpoch */
                        rd_kafka_buf_read_i64(rkbuf, &part->offset);
                        if (version >= 12)
                                rd_kafka_buf_read_i32(rkbuf, &skipped32); /* LastFetchedEpoch */
                        if (version >= 5)
                                rd_kafka_buf_read_i64(rkbuf, &skipped64); /* LogStartOffset */
                        rd_kafka_buf_read_i32(rkbuf, &skipped32); /* PartMaxBytes */
                        rd_kafka_buf_skip_tags(rkbuf);
                        topic->partition_cnt = p + 1;
                }
                rd_kafka_buf_skip_tags(rkbuf);
        }
        return watch;

err_parse:
        fetch_watch_destroy(watch);
        return NULL;
}

/* Whether the fetch asked for `mpart` from an offset its log now reaches past. */
static rd_bool_t fetch_watch_wants(const struct fetch_watch *watch,
                                   const rd_kafka_mock_partition_t *mpart) {
        const rd_kafka_mock_topic_t *mtopic = mpart->topic;
        int t, p;

        for (t = 0; t < watch->topic_cnt; t++) {
                const struct watched_topic *topic = &watch->topics[t];

                if (watch->by_id ? rd_kafka_Uuid_cmp(topic->id, mtopic->id) != 0
                                 : !topic->name || strcmp(topic->name, mtopic->name))
                        continue;
                for (p = 0; p < topic->partition_cnt; p++) {
                        if (topic->partitions[p].partition == mpart->id &&
                            topic->partitions[p].offset < mpart->end_offset)
                                return rd_true;
                }
        }
        return rd_false;
}

/*
 * Has the connection write out at the cluster thread's next poll, as the timer that held the
 * response back would have when the wait ran out (the mock's own setter is private to it).
 */
static void connection_write_now(rd_kafka_mock_cluster_t *mcluster,
                                 rd_kafka_mock_connection_t *mconn) {
        int i;

        rd_kafka_timer_stop(&mcluster->timers, &mconn->write_tmr, rd_true);
        for (i = 0; i < mcluster->fd_cnt; i++) {
                if (mcluster->fds[i].fd == mconn->transport->rktrans_s)
                        mcluster->fds[i].events |= POLLOUT;
        }
}

/* Releases every held-back Fetch response that waits for data `mpart` now has. */
static void release_fetches_waiting_for(const rd_kafka_mock_partition_t *mpart) {
        rd_kafka_mock_cluster_t *mcluster = mpart->topic->cluster;
        rd_kafka_mock_broker_t *mrkb;
        rd_kafka_mock_connection_t *mconn;
        rd_kafka_buf_t *resp;
        rd_ts_t now = rd_clock();

        TAILQ_FOREACH(mrkb, &mcluster->brokers, link) {
                TAILQ_FOREACH(mconn, &mrkb->connections, link) {
                        rd_bool_t released = rd_false;

                        TAILQ_FOREACH(resp, &mconn->outbufs.rkbq_bufs, rkbuf_link) {
                                if (resp->rkbuf_free_make_opaque_cb != fetch_watch_destroy ||
                                    resp->rkbuf_ts_retry <= now ||
                                    !fetch_watch_wants(resp->rkbuf_make_opaque, mpart))
                                        continue;
                                resp->rkbuf_ts_retry = 0;
                                released             = rd_true;
                        }
                        if (released)
                                connection_write_now(mcluster, mconn);
                }
        }
}

rd_kafka_buf_t *__wrap_rd_kafka_mock_buf_new_response(const rd_kafka_buf_t *request) {
        rd_kafka_buf_t *resp = __real_rd_kafka_mock_buf_new_response(request);
        struct fetch_watch *watch;

        if (request->rkbuf_reqhdr.ApiKey == RD_KAFKAP_Fetch &&
            (watch = fetch_watch_read(request))) {
                resp->rkbuf_make_opaque         = watch;
                resp->rkbuf_free_make_opaque_cb = fetch_watch_destroy;
        }
        return resp;
}

rd_kafka_resp_err_t
__wrap_rd_kafka_mock_partition_log_append(rd_kafka_mock_partition_t *mpart,
                                          const rd_kafkap_bytes_t *records,
                                          const rd_kafkap_str_t *TransactionalId,
                                          int64_t *BaseOffset) {
        int64_t end_offset = mpart->end_offset;
        rd_kafka_resp_err_t err = __real_rd_kafka_mock_partition_log_append(
            mpart, records, TransactionalId, BaseOffset);

        /* A duplicate from an idempotent producer is acknowledged but not appended. */
        if (!err && mpart->end_offset > end_offset)
                release_fetches_waiting_for(mpart);
        return err;
}
