/* See shim.h: thin out-of-line wrappers over DPDK static-inline functions. */
/* fopencookie (log routing) is a GNU extension. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "shim.h"

static l4vs_log_sink log_sink;

static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	l4vs_log_sink sink = log_sink;

	(void)cookie;
	if (sink != NULL && size > 0) {
		int level = rte_log_cur_msg_loglevel();

		sink(level > 0 ? (uint32_t)level : 0, buf, size);
	}
	return (ssize_t)size;
}

int l4vs_log_route(l4vs_log_sink sink)
{
	cookie_io_functions_t io = { .write = log_write };
	FILE *f;

	log_sink = sink;
	f = fopencookie(NULL, "w", io);
	if (f == NULL)
		return -errno;
	/* rte_vlog flushes after every message: full buffering hands the
	 * sink each message in one piece. */
	return rte_openlog_stream(f);
}

int l4vs_errno(void) { return rte_errno; }
unsigned int l4vs_lcore_id(void) { return rte_lcore_id(); }
uint64_t l4vs_rdtsc(void) { return rte_rdtsc(); }

uint16_t l4vs_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t l4vs_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

int l4vs_eth_link_up(uint16_t port_id)
{
	struct rte_eth_link link;
	int ret;

	memset(&link, 0, sizeof(link));
	ret = rte_eth_link_get_nowait(port_id, &link);
	if (ret < 0)
		return ret;
	return link.link_status == RTE_ETH_LINK_UP;
}

int64_t l4vs_eth_link_speed(uint16_t port_id)
{
	struct rte_eth_link link;
	int ret;

	memset(&link, 0, sizeof(link));
	ret = rte_eth_link_get_nowait(port_id, &link);
	if (ret < 0)
		return ret;
	if (link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN)
		return 0;
	return link.link_speed;
}

struct rte_mbuf *l4vs_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int l4vs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			    unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void l4vs_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *l4vs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *l4vs_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *l4vs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int l4vs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void l4vs_pktmbuf_truncate(struct rte_mbuf *m, uint16_t len)
{
	if (len >= m->data_len)
		return;
	if (m->next != NULL) {
		rte_pktmbuf_free(m->next);
		m->next = NULL;
		m->nb_segs = 1;
	}
	m->data_len = len;
	m->pkt_len = len;
}

uint16_t l4vs_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t l4vs_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint8_t *l4vs_pktmbuf_data(struct rte_mbuf *m, uint16_t *data_len)
{
	*data_len = m->data_len;
	return rte_pktmbuf_mtod(m, uint8_t *);
}

void *l4vs_pktmbuf_buf_addr(const struct rte_mbuf *m) { return m->buf_addr; }
uint16_t l4vs_pktmbuf_data_off(const struct rte_mbuf *m) { return m->data_off; }
uint16_t l4vs_pktmbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
uint32_t l4vs_pktmbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }
uint16_t l4vs_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
uint16_t l4vs_pktmbuf_port(const struct rte_mbuf *m) { return m->port; }

unsigned int l4vs_ring_sp_enqueue_burst(struct rte_ring *r,
					void *const *obj_table, unsigned int n,
					unsigned int *free_space)
{
	return rte_ring_sp_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int l4vs_ring_sc_dequeue_burst(struct rte_ring *r, void **obj_table,
					unsigned int n, unsigned int *available)
{
	return rte_ring_sc_dequeue_burst(r, obj_table, n, available);
}

unsigned int l4vs_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}
