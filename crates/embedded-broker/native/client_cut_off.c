/*
 * Cutting one client off librdkafka's mock cluster (the embedded broker), for failure tests.
 *
 * Apache Kafka has no such switch, but a network has: one service loses its route to the
 * brokers while every other service keeps working. The mock cluster can take a whole broker
 * down, which cuts everybody off at once; this cuts off only the clients whose `client.id`
 * (each service uses its own name) is on a list. Their connections are dropped at their next
 * request, from the very first (ApiVersion) on, so they can neither produce, fetch, join a
 * group, heartbeat nor commit, exactly as if their packets were lost; taking the id off the
 * list lets them reconnect as they would after a network partition heals.
 *
 * How: every request handler of the cluster is replaced by one that reads the client id from
 * the request header and either refuses (a handler that fails makes the cluster close the
 * connection) or calls the original handler. The handlers live in a per-cluster table that
 * librdkafka copies from `rd_kafka_mock_api_handlers` when the cluster starts, so the originals
 * stay at hand. It is compiled against the headers of the very librdkafka build it is linked
 * with (see build.rs).
 */
#include "rdkafka_int.h"
#include "rdkafka_mock_int.h"

/* Room for the clients of a few clusters; failure tests cut off one or two at a time. */
#define CUT_OFF_MAX 32
#define CLIENT_ID_MAX 128

struct cut_off {
        const rd_kafka_mock_cluster_t *mcluster;
        char client_id[CLIENT_ID_MAX];
};

static struct cut_off cut_off[CUT_OFF_MAX];
static mtx_t cut_off_lock;
static once_flag cut_off_once = ONCE_FLAG_INIT;

static void cut_off_init(void) {
        mtx_init(&cut_off_lock, mtx_plain);
}

static int is_cut_off(const rd_kafka_mock_cluster_t *mcluster,
                      const char *client_id,
                      size_t len) {
        int i, found = 0;
        mtx_lock(&cut_off_lock);
        for (i = 0; i < CUT_OFF_MAX && !found; i++)
                found = cut_off[i].mcluster == mcluster &&
                        strlen(cut_off[i].client_id) == len &&
                        !memcmp(cut_off[i].client_id, client_id, len);
        mtx_unlock(&cut_off_lock);
        return found;
}

/* The request's client id: a nullable int16-length string right after the fixed header. */
static size_t request_client_id(rd_kafka_buf_t *rkbuf, char *out, size_t size) {
        rd_slice_t slice;
        int16_t len_be;
        size_t len;
        size_t total = rd_buf_len(&rkbuf->rkbuf_buf);

        if (total < RD_KAFKAP_REQHDR_SIZE + 2)
                return 0;
        rd_slice_init(&slice, &rkbuf->rkbuf_buf, RD_KAFKAP_REQHDR_SIZE,
                      total - RD_KAFKAP_REQHDR_SIZE);
        if (rd_slice_read(&slice, &len_be, sizeof(len_be)) != sizeof(len_be))
                return 0;
        if ((int16_t)be16toh(len_be) <= 0)
                return 0;
        len = (size_t)(int16_t)be16toh(len_be);
        if (len > size || rd_slice_read(&slice, out, len) != len)
                return 0;
        return len;
}

static int refuse_cut_off_clients(rd_kafka_mock_connection_t *mconn,
                                  rd_kafka_buf_t *rkbuf) {
        char client_id[CLIENT_ID_MAX];
        size_t len = request_client_id(rkbuf, client_id, sizeof(client_id));
        int16_t api = rkbuf->rkbuf_reqhdr.ApiKey;

        if (len > 0 && is_cut_off(mconn->broker->cluster, client_id, len))
                return -1; /* The cluster closes the connection. */
        return rd_kafka_mock_api_handlers[api].cb(mconn, rkbuf);
}

/* Puts the filter in front of every request handler of the cluster `rk` owns. */
int shop_mock_cut_off_install(rd_kafka_t *rk) {
        rd_kafka_mock_cluster_t *mcluster = rd_kafka_handle_mock_cluster(rk);
        int i;

        if (!mcluster)
                return -1;
        call_once(&cut_off_once, cut_off_init);
        for (i = 0; i < RD_KAFKAP__NUM; i++) {
                if (rd_kafka_mock_api_handlers[i].cb)
                        mcluster->api_handlers[i].cb = refuse_cut_off_clients;
        }
        return 0;
}

/* Cuts `client_id` off the cluster `rk` owns (`cut` != 0) or lets it back. */
int shop_mock_cut_off_set(rd_kafka_t *rk, const char *client_id, int cut) {
        const rd_kafka_mock_cluster_t *mcluster = rd_kafka_handle_mock_cluster(rk);
        int i, free_slot = -1, result = 0;

        if (!mcluster || strlen(client_id) == 0 ||
            strlen(client_id) >= CLIENT_ID_MAX)
                return -1;
        call_once(&cut_off_once, cut_off_init);
        mtx_lock(&cut_off_lock);
        for (i = 0; i < CUT_OFF_MAX; i++) {
                if (cut_off[i].mcluster == mcluster &&
                    !strcmp(cut_off[i].client_id, client_id)) {
                        if (!cut)
                                cut_off[i].mcluster = NULL;
                        break;
                }
                if (!cut_off[i].mcluster && free_slot < 0)
                        free_slot = i;
        }
        if (i == CUT_OFF_MAX && cut) {
                if (free_slot < 0) {
                        result = -1;
                } else {
                        cut_off[free_slot].mcluster = mcluster;
                        strcpy(cut_off[free_slot].client_id, client_id);
                }
        }
        mtx_unlock(&cut_off_lock);
        return result;
}

/* Forgets every client cut off the cluster `rk` owns (before the cluster goes). */
void shop_mock_cut_off_clear(rd_kafka_t *rk) {
        const rd_kafka_mock_cluster_t *mcluster = rd_kafka_handle_mock_cluster(rk);
        int i;

        call_once(&cut_off_once, cut_off_init);
        mtx_lock(&cut_off_lock);
        for (i = 0; i < CUT_OFF_MAX; i++) {
                if (cut_off[i].mcluster == mcluster)
                        cut_off[i].mcluster = NULL;
        }
        mtx_unlock(&cut_off_lock);
}
