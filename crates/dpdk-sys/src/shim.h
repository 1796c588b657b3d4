/*
 * l4vs-dpdk-sys shim: out-of-line C wrappers for DPDK's static-inline
 * fast-path functions and macros, which have no symbol to link against.
 * Every wrapper is named l4vs_* and does nothing but call the DPDK
 * function or read the field it names; the Rust side owns all policy.
 *
 * This header is also the bindgen input: it pulls in exactly the DPDK
 * headers the bindings need.
 */
#ifndef L4VS_DPDK_SHIM_H
#define L4VS_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_version.h>

/* Macro values that bindgen cannot evaluate (they are built from
 * function-like macros or other macros), made into typed constants. */
static const uint16_t L4VS_MBUF_DEFAULT_BUF_SIZE = RTE_MBUF_DEFAULT_BUF_SIZE;
static const uint16_t L4VS_PKTMBUF_HEADROOM = RTE_PKTMBUF_HEADROOM;
static const uint64_t L4VS_ETH_RSS_IP_TCP_UDP =
	RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
/* Receive checksum offload: the port capability and the mbuf flags that
 * say what the port found of a packet's IPv4 header checksum. */
static const uint64_t L4VS_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
static const uint64_t L4VS_MBUF_F_RX_IP_CKSUM_MASK = RTE_MBUF_F_RX_IP_CKSUM_MASK;
static const uint64_t L4VS_MBUF_F_RX_IP_CKSUM_GOOD = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
static const uint64_t L4VS_MBUF_F_RX_IP_CKSUM_BAD = RTE_MBUF_F_RX_IP_CKSUM_BAD;
static const uint16_t L4VS_MAX_ETHPORTS = RTE_MAX_ETHPORTS;
static const uint16_t L4VS_MAX_QUEUES_PER_PORT = RTE_MAX_QUEUES_PER_PORT;
static const uint32_t L4VS_ETH_NAME_MAX_LEN = RTE_ETH_NAME_MAX_LEN;
static const int32_t L4VS_SOCKET_ID_ANY = SOCKET_ID_ANY;
static const uint32_t L4VS_LCORE_ID_ANY = LCORE_ID_ANY;

/* EAL */
int l4vs_errno(void);
unsigned int l4vs_lcore_id(void);
uint64_t l4vs_rdtsc(void);

/* Log routing. A sink takes what DPDK's log wrote (one or more whole
 * lines, usually one message; not NUL-terminated) and the level of the
 * message being written (rte_log_cur_msg_loglevel: RTE_LOG_EMERG 1 to
 * RTE_LOG_DEBUG 8, 0 when unknown). l4vs_log_route makes DPDK write its
 * log (rte_log, RTE_LOG) to `sink` from now on, through a stdio cookie
 * stream given to rte_openlog_stream; call it before rte_eal_init to
 * catch EAL's own lines. Returns 0, or a negative errno when the stream
 * cannot be made. The sink runs on the logging thread, under the stream's
 * lock: it must not log through DPDK itself. */
typedef void (*l4vs_log_sink)(uint32_t level, const char *text, size_t len);
int l4vs_log_route(l4vs_log_sink sink);

/* ethdev */
uint16_t l4vs_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t l4vs_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
/* 1 if the link is up, 0 if down, a negative errno on failure. */
int l4vs_eth_link_up(uint16_t port_id);
/* The link speed in Mbit/s (0 when the driver reports none), or a
 * negative errno on failure; does not wait for negotiation. */
int64_t l4vs_eth_link_speed(uint16_t port_id);

/* mbuf */
struct rte_mbuf *l4vs_pktmbuf_alloc(struct rte_mempool *mp);
int l4vs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			    unsigned int count);
void l4vs_pktmbuf_free(struct rte_mbuf *m);
char *l4vs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *l4vs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *l4vs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int l4vs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
/* Shrink the first segment to at most len bytes, freeing any further
 * segments when it shrinks; the mbuf is then one segment of len bytes. */
void l4vs_pktmbuf_truncate(struct rte_mbuf *m, uint16_t len);
uint16_t l4vs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t l4vs_pktmbuf_tailroom(const struct rte_mbuf *m);
/* rte_pktmbuf_mtod(m, uint8_t *) and the first segment's data_len. */
uint8_t *l4vs_pktmbuf_data(struct rte_mbuf *m, uint16_t *data_len);
void *l4vs_pktmbuf_buf_addr(const struct rte_mbuf *m);
uint16_t l4vs_pktmbuf_data_off(const struct rte_mbuf *m);
uint16_t l4vs_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t l4vs_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t l4vs_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t l4vs_pktmbuf_port(const struct rte_mbuf *m);
/* Byte offsets in struct rte_mbuf of the fields the per-packet path reads
 * without a call (rte_pktmbuf_mtod, data_len, ol_flags), as this DPDK's
 * header lays them out: the C compiler computes them (bindgen evaluates
 * the enum), so no layout is written into Rust. */
enum {
	L4VS_MBUF_BUF_ADDR_OFFSET = offsetof(struct rte_mbuf, buf_addr),
	L4VS_MBUF_DATA_OFF_OFFSET = offsetof(struct rte_mbuf, data_off),
	L4VS_MBUF_DATA_LEN_OFFSET = offsetof(struct rte_mbuf, data_len),
	L4VS_MBUF_OL_FLAGS_OFFSET = offsetof(struct rte_mbuf, ol_flags),
};
_Static_assert(sizeof(((struct rte_mbuf *)0)->buf_addr) == sizeof(void *),
	       "rte_mbuf.buf_addr is a pointer");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_off) == 2,
	       "rte_mbuf.data_off is 16 bits");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_len) == 2,
	       "rte_mbuf.data_len is 16 bits");
_Static_assert(sizeof(((struct rte_mbuf *)0)->ol_flags) == 8,
	       "rte_mbuf.ol_flags is 64 bits");

/* ring (single-producer / single-consumer variants) */
unsigned int l4vs_ring_sp_enqueue_burst(struct rte_ring *r,
					void *const *obj_table, unsigned int n,
					unsigned int *free_space);
unsigned int l4vs_ring_sc_dequeue_burst(struct rte_ring *r, void **obj_table,
					unsigned int n, unsigned int *available);
unsigned int l4vs_ring_count(const struct rte_ring *r);

#endif
