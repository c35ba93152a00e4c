/*
 * A faster message-set lookup for librdkafka's mock cluster (the embedded broker).
 *
 * librdkafka finds the message set holding a fetch offset by walking a partition's list of
 * message sets from its oldest entry. Consumers fetch at the newest offsets, so every fetch
 * walks the whole list: a partition holds up to 5 MiB of message sets, and at saga load the
 * walk took a seventh of the embedded shop's CPU after ten seconds and half of it after five
 * minutes. Apache Kafka indexes its log and has no such cost.
 *
 * This definition replaces librdkafka's at link time (`-Wl,--wrap`, see build.rs). It makes
 * the same range checks and returns the same message set, but walks from whichever end of the
 * list is nearer to the offset: offsets grow along the list, so a consumer at the tail finds
 * its message set within a few steps, and one reading from the beginning as quickly.
 * It is compiled against the headers of the very librdkafka build it is linked with.
 */
#include "rdkafka_int.h"
#include "rdkafka_mock_int.h"

const rd_kafka_mock_msgset_t *
__wrap_rd_kafka_mock_msgset_find(const rd_kafka_mock_partition_t *mpart,
                                 int64_t offset,
                                 rd_bool_t on_follower) {
        const rd_kafka_mock_msgset_t *mset;
        int64_t start = on_follower ? mpart->follower_start_offset
                                    : mpart->start_offset;
        int64_t end = on_follower ? mpart->follower_end_offset
                                  : mpart->end_offset;

        if (offset < start || offset > end)
                return NULL;

        if (offset - start <= end - offset) {
                TAILQ_FOREACH(mset, &mpart->msgsets, link) {
                        if (mset->first_offset <= offset &&
                            offset <= mset->last_offset)
                                return mset;
                }
        } else {
                TAILQ_FOREACH_REVERSE(mset, &mpart->msgsets,
                                      rd_kafka_mock_msgset_tailq_s, link) {
                        if (mset->first_offset <= offset &&
                            offset <= mset->last_offset)
                                return mset;
                        /* Offsets only fall towards the head: nothing there. */
                        if (mset->last_offset < offset)
                                return NULL;
                }
        }

        return NULL;
}
