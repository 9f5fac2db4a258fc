// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass NIC backend glue: what the Rust PCI driver of the 82576
 * (src/nic/) needs that the kernel crate of 7.2 does not offer.
 *
 * Why C: `kernel::pci` enables a function and its bus mastering but has no
 * counterpart (pci_clear_master, pci_disable_device); 7.2 has no Rust
 * net_device or NAPI abstraction, so the host pool's interface (pvpnic<n>)
 * is a net_device made here, as pvpsw0 is in hostport.c; dma_rmb() is a
 * macro.
 *
 * The interface is thin: it moves frames between skbs and the Rust data
 * path (src/nic/host.rs), which owns the rings and every descriptor the NIC
 * sees. Both directions run in the interface's NAPI poll, so the Rust data
 * path has one context and needs no lock of its own: ndo_start_xmit only
 * queues the skb and schedules the poll; the poll reaps transmit
 * completions, hands received frames up (one copy out of the NIC's buffer)
 * and copies queued skbs into free transmit buffers (one copy). ndo_open
 * calls Rust before napi_enable, ndo_stop after napi_disable, so neither
 * runs beside a poll.
 */
#include <linux/etherdevice.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/skbuff.h>
#include <linux/virtio_net.h>

#include "glue.h"

/* Frames queued by ndo_start_xmit before the interface stops its queue. */
#define PVPASS_NIC_TXQ_LEN 256

struct pvpass_nicport {
	struct net_device *dev;
	struct napi_struct napi;
	struct sk_buff_head txq;
	void *ctx;		/* the Rust data path's */
	u64 tx_csum;		/* frames handed over for the NIC to checksum */
	bool registered;
};

/* Bus mastering off and the function disabled: the end of probe's enable. */
void pvpass_nic_pci_disable(struct pci_dev *pdev)
{
	pci_clear_master(pdev);
	pci_disable_device(pdev);
}

void pvpass_dma_rmb(void)
{
	dma_rmb();
}

static int pvpass_nic_poll(struct napi_struct *napi, int budget)
{
	struct pvpass_nicport *p = container_of(napi, struct pvpass_nicport, napi);
	int done = pvpass_rs_nic_poll(p->ctx, p, budget);

	if (done > budget)
		done = budget;
	if (done < budget && napi_complete_done(napi, done))
		pvpass_rs_nic_unmask(p->ctx);
	return done;
}

static netdev_tx_t pvpass_nic_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct pvpass_nicport *p = netdev_priv(dev);

	skb_queue_tail(&p->txq, skb);
	if (skb_queue_len(&p->txq) >= PVPASS_NIC_TXQ_LEN)
		netif_stop_queue(dev);
	/* After the stop: a poll that already passed its wake check runs again. */
	napi_schedule(&p->napi);
	return NETDEV_TX_OK;
}

static int pvpass_nic_open(struct net_device *dev)
{
	struct pvpass_nicport *p = netdev_priv(dev);
	int link = pvpass_rs_nic_open(p->ctx);

	if (link < 0)
		return link;
	napi_enable(&p->napi);
	if (link)
		netif_carrier_on(dev);
	else
		netif_carrier_off(dev);
	netif_start_queue(dev);
	/* Frames that arrived before the poll was enabled. */
	napi_schedule(&p->napi);
	return 0;
}

static int pvpass_nic_stop(struct net_device *dev)
{
	struct pvpass_nicport *p = netdev_priv(dev);

	netif_stop_queue(dev);
	napi_disable(&p->napi);
	pvpass_rs_nic_stop(p->ctx);
	skb_queue_purge(&p->txq);
	netif_carrier_off(dev);
	return 0;
}

static const struct net_device_ops pvpass_nic_ops = {
	.ndo_open = pvpass_nic_open,
	.ndo_stop = pvpass_nic_stop,
	.ndo_start_xmit = pvpass_nic_xmit,
	.ndo_validate_addr = eth_validate_addr,
};

/*
 * No ndo_set_mac_address and no ndo_set_rx_mode: the MAC is the host pool's
 * receive address entry, set when the NIC was taken; the pool takes every
 * multicast and broadcast.
 */
static void pvpass_nic_setup(struct net_device *dev)
{
	ether_setup(dev);
	dev->netdev_ops = &pvpass_nic_ops;
	/*
	 * The NIC inserts TCP and UDP checksums (IPv4, IPv6) and segments TCP
	 * (TSO, from a copy of the frame in up to 32 of the pool's 2 KiB
	 * buffers: scatter-gather costs nothing more, the copy gathers).
	 */
	dev->features = NETIF_F_RXCSUM | NETIF_F_IP_CSUM | NETIF_F_IPV6_CSUM |
			NETIF_F_SG | NETIF_F_TSO | NETIF_F_TSO6;
	dev->hw_features = dev->features;
	/* 32 data descriptors of 2 KiB (the pool's TX_MAX_DATA_DESCS). */
	netif_set_tso_max_size(dev, 32 * 2048);
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = ETH_DATA_LEN;
}

/*
 * The interface of a NIC's host pool, not registered yet: the caller wires
 * its interrupt to pvpass_nicport_irq() first, then registers it. @ctx is
 * the Rust data path, given to every pvpass_rs_nic_* call.
 */
struct pvpass_nicport *pvpass_nicport_create(struct pci_dev *pdev, const u8 *mac, void *ctx)
{
	struct net_device *dev;
	struct pvpass_nicport *p;

	dev = alloc_netdev(sizeof(*p), "pvpnic%d", NET_NAME_ENUM, pvpass_nic_setup);
	if (!dev)
		return ERR_PTR(-ENOMEM);
	p = netdev_priv(dev);
	p->dev = dev;
	p->ctx = ctx;
	skb_queue_head_init(&p->txq);
	SET_NETDEV_DEV(dev, &pdev->dev);
	eth_hw_addr_set(dev, mac);
	netif_napi_add(dev, &p->napi, pvpass_nic_poll);
	netif_carrier_off(dev);
	return p;
}

int pvpass_nicport_register(struct pvpass_nicport *p)
{
	int err = register_netdev(p->dev);

	p->registered = !err;
	return err;
}

/* Unregisters the interface (closing it: ndo_stop), if registered. */
void pvpass_nicport_unregister(struct pvpass_nicport *p)
{
	if (p->registered) {
		netdev_info(p->dev, "removed: %llu frames sent, %llu with the checksum inserted by the NIC\n",
			    (u64)DEV_STATS_READ(p->dev, tx_packets), p->tx_csum);
		unregister_netdev(p->dev);
		p->registered = false;
	}
}

/* Frees an unregistered interface. Its interrupt must be freed already. */
void pvpass_nicport_free(struct pvpass_nicport *p)
{
	skb_queue_purge(&p->txq);
	free_netdev(p->dev);
}

/* The interface's name (IFNAMSIZ bytes at @name), for log lines. */
void pvpass_nicport_name(struct pvpass_nicport *p, char *name)
{
	strscpy(name, netdev_name(p->dev), IFNAMSIZ);
}

/* The NIC's interrupt (hard interrupt context): poll. */
void pvpass_nicport_irq(struct pvpass_nicport *p)
{
	napi_schedule(&p->napi);
}

/*
 * The next queued frame, copied into the @nbufs buffers at @bufs (@buf_len
 * bytes each, filled in order), with its virtio-net header (a
 * virtio_net_hdr_v1, 12 bytes at @hdr: the checksum the NIC is to insert
 * and the segmentation it is to do, if any): its length, or 0 if none is
 * queued or the next does not fit in @nbufs buffers now (it stays queued).
 * A frame of more than @max bytes (@max_gso for a TSO frame), or whose
 * checksum the NIC cannot insert (not TCP or UDP: resolved here in
 * software), is handled here; one that cannot be is dropped (counted) and
 * the next one taken. NAPI poll only.
 */
u32 pvpass_nicport_tx_next(struct pvpass_nicport *p, void *const *bufs, u32 nbufs, u32 buf_len,
			   u32 max, u32 max_gso, void *hdr)
{
	struct net_device *dev = p->dev;
	struct virtio_net_hdr_v1 *h = hdr;
	struct sk_buff *skb;
	u32 len, off, n, i;

	while ((skb = skb_dequeue(&p->txq))) {
		len = skb->len;
		memset(h, 0, sizeof(*h));
		if (skb->ip_summed == CHECKSUM_PARTIAL &&
		    !(skb->csum_offset == offsetof(struct tcphdr, check) ||
		      skb->csum_offset == offsetof(struct udphdr, check)) &&
		    skb_checksum_help(skb))
			goto drop;
		if (len < ETH_HLEN || len > (skb_is_gso(skb) ? max_gso : max) ||
		    (skb_is_gso(skb) &&
		     !(skb_shinfo(skb)->gso_type & (SKB_GSO_TCPV4 | SKB_GSO_TCPV6))) ||
		    virtio_net_hdr_from_skb(skb, (struct virtio_net_hdr *)h, true, false, 0))
			goto drop;
		if (!buf_len || len > (u64)nbufs * buf_len) {
			/* Not now: the ring has too few free buffers. */
			skb_queue_head(&p->txq, skb);
			return 0;
		}
		for (off = 0, i = 0; off < len; off += n, i++) {
			n = min(buf_len, len - off);
			if (skb_copy_bits(skb, off, bufs[i], n))
				goto drop;
		}
		DEV_STATS_INC(dev, tx_packets);
		DEV_STATS_ADD(dev, tx_bytes, len);
		if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			p->tx_csum++;
		consume_skb(skb);
		return len;
drop:
		DEV_STATS_INC(dev, tx_dropped);
		kfree_skb(skb);
	}
	return 0;
}

/* A frame the NIC could not take after all (its descriptors refused): counted. */
void pvpass_nicport_tx_error(struct pvpass_nicport *p)
{
	DEV_STATS_INC(p->dev, tx_errors);
}

/* End of a poll's transmit: wake the queue once there is room again. */
void pvpass_nicport_tx_done(struct pvpass_nicport *p)
{
	if (netif_queue_stopped(p->dev) &&
	    skb_queue_len(&p->txq) < PVPASS_NIC_TXQ_LEN / 2)
		netif_wake_queue(p->dev);
}

/*
 * A received frame of @len bytes at @data (the NIC's buffer, copied here):
 * to the stack, with the NIC's checksum verdict. -ENOMEM (counted) if no
 * skb. NAPI poll only.
 */
int pvpass_nicport_rx(struct pvpass_nicport *p, const void *data, u32 len, bool csum_ok)
{
	struct net_device *dev = p->dev;
	struct sk_buff *skb = napi_alloc_skb(&p->napi, len);

	if (!skb) {
		DEV_STATS_INC(dev, rx_dropped);
		return -ENOMEM;
	}
	skb_put_data(skb, data, len);
	skb->protocol = eth_type_trans(skb, dev);
	if (csum_ok && (dev->features & NETIF_F_RXCSUM))
		skb->ip_summed = CHECKSUM_UNNECESSARY;
	DEV_STATS_INC(dev, rx_packets);
	DEV_STATS_ADD(dev, rx_bytes, len);
	napi_gro_receive(&p->napi, skb);
	return 0;
}

/* A frame the NIC delivered damaged or that pvpass refused: counted. */
void pvpass_nicport_rx_error(struct pvpass_nicport *p)
{
	DEV_STATS_INC(p->dev, rx_errors);
}
