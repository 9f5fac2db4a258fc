// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass host port: the switch's port into the host network stack, a
 * net_device (pvpsw0) that the host uses like any other interface.
 *
 * Why C: Linux 7.2 has no Rust net_device abstraction (rust/kernel/net has
 * only phy), and struct net_device_ops, skb handling and the
 * virtio_net_hdr <-> skb helpers are C (many static inlines). This file stays
 * thin: it moves frames and their virtio_net_hdr between skbs and the Rust
 * switch (src/backend/hostport.rs); it makes no forwarding decision.
 *
 * Host -> switch: ndo_start_xmit only queues the skb; a work item hands the
 * queued frames to the switch in process context (delivery pins and may
 * allocate, as on guests' vCPU threads), like vhost's worker.
 * Switch -> host: pvpass_hostport_rx() builds an skb and calls netif_rx(); it
 * runs on the sending guest's vCPU thread (run to completion).
 *
 * The interface advertises SG, HW_CSUM and TSO/TSO6: the host stack hands
 * over 64 KiB TCP segments with partial checksums, which cross the switch
 * unsegmented to guests that negotiated the matching offloads.
 */
#include <linux/etherdevice.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <linux/virtio_net.h>
#include <linux/workqueue.h>

#include "glue.h"

/* Frames queued by ndo_start_xmit before the interface stops its queue. */
#define PVPASS_HOST_TXQ_LEN 256

struct pvpass_hostport {
	struct net_device *dev;
	struct sk_buff_head txq;
	struct work_struct work;
	void *ctx;		/* the Rust side's, for pvpass_rs_host_xmit */
};

struct pvpass_hostport_priv {
	struct pvpass_hostport *hp;
};

static netdev_tx_t pvpass_host_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct pvpass_hostport_priv *priv = netdev_priv(dev);
	struct pvpass_hostport *hp = priv->hp;

	skb_queue_tail(&hp->txq, skb);
	if (skb_queue_len(&hp->txq) >= PVPASS_HOST_TXQ_LEN)
		netif_stop_queue(dev);
	schedule_work(&hp->work);
	return NETDEV_TX_OK;
}

static void pvpass_host_work(struct work_struct *work)
{
	struct pvpass_hostport *hp = container_of(work, struct pvpass_hostport, work);
	struct net_device *dev = hp->dev;
	struct virtio_net_hdr_v1 hdr;
	struct sk_buff *skb;

	while ((skb = skb_dequeue(&hp->txq))) {
		memset(&hdr, 0, sizeof(hdr));
		if (virtio_net_hdr_from_skb(skb, (struct virtio_net_hdr *)&hdr,
					    true, false, 0) ||
		    skb_linearize(skb)) {
			DEV_STATS_INC(dev, tx_dropped);
			kfree_skb(skb);
			continue;
		}
		DEV_STATS_INC(dev, tx_packets);
		DEV_STATS_ADD(dev, tx_bytes, skb->len);
		pvpass_rs_host_xmit(hp->ctx, &hdr, skb->data, skb->len);
		consume_skb(skb);
		cond_resched();
	}
	if (netif_queue_stopped(dev))
		netif_wake_queue(dev);
}

static int pvpass_host_open(struct net_device *dev)
{
	netif_carrier_on(dev);
	netif_start_queue(dev);
	return 0;
}

static int pvpass_host_stop(struct net_device *dev)
{
	netif_stop_queue(dev);
	netif_carrier_off(dev);
	return 0;
}

static const struct net_device_ops pvpass_host_ops = {
	.ndo_open = pvpass_host_open,
	.ndo_stop = pvpass_host_stop,
	.ndo_start_xmit = pvpass_host_xmit,
	.ndo_validate_addr = eth_validate_addr,
};

/*
 * No ndo_set_mac_address: the switch keeps the port's MAC as a static entry
 * of its forwarding table, so the address is fixed while the module is
 * loaded (ip link set ... address fails with EOPNOTSUPP).
 */
static void pvpass_host_setup(struct net_device *dev)
{
	ether_setup(dev);
	dev->netdev_ops = &pvpass_host_ops;
	dev->features = NETIF_F_SG | NETIF_F_HW_CSUM | NETIF_F_TSO |
			NETIF_F_TSO6 | NETIF_F_HIGHDMA;
	dev->hw_features = dev->features;
	dev->priv_flags |= IFF_NO_QUEUE;
	/* Guests have a 1500-byte MTU; GSO frames may be up to 64 KiB. */
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = 1500;
	netif_set_tso_max_size(dev, GSO_LEGACY_MAX_SIZE);
}

struct pvpass_hostport *pvpass_hostport_create(const char *name, void *ctx)
{
	struct pvpass_hostport *hp;
	struct pvpass_hostport_priv *priv;
	int err;

	hp = kzalloc(sizeof(*hp), GFP_KERNEL);
	if (!hp)
		return ERR_PTR(-ENOMEM);
	hp->ctx = ctx;
	skb_queue_head_init(&hp->txq);
	INIT_WORK(&hp->work, pvpass_host_work);
	hp->dev = alloc_netdev(sizeof(*priv), name, NET_NAME_USER,
			       pvpass_host_setup);
	if (!hp->dev) {
		kfree(hp);
		return ERR_PTR(-ENOMEM);
	}
	priv = netdev_priv(hp->dev);
	priv->hp = hp;
	eth_hw_addr_random(hp->dev);
	err = register_netdev(hp->dev);
	if (err) {
		free_netdev(hp->dev);
		kfree(hp);
		return ERR_PTR(err);
	}
	return hp;
}

/* The interface's MAC address (6 bytes), for the switch's own table. */
void pvpass_hostport_mac(struct pvpass_hostport *hp, u8 *mac)
{
	rtnl_lock();
	ether_addr_copy(mac, hp->dev->dev_addr);
	rtnl_unlock();
}

/*
 * Unregisters the interface (no xmit runs after that), stops the worker and
 * drops what it had not handed over. The switch must no longer call
 * pvpass_hostport_rx() for this port.
 */
void pvpass_hostport_destroy(struct pvpass_hostport *hp)
{
	unregister_netdev(hp->dev);
	cancel_work_sync(&hp->work);
	skb_queue_purge(&hp->txq);
	free_netdev(hp->dev);
	kfree(hp);
}

/*
 * A frame from the switch for the host, in two steps so that Rust copies it
 * once, straight from the sender's pinned pages into the skb: rx_alloc gives
 * an skb with @len bytes of room (NULL, counted, if the interface is down or
 * memory short), Rust fills them with the Ethernet frame, rx_commit applies
 * the checked virtio_net_hdr_v1 @hdr and hands the skb to the stack (it
 * always consumes it; -EINVAL, counted, if the stack refuses the header).
 * Process context (a guest's vCPU thread).
 */
void *pvpass_hostport_rx_alloc(struct pvpass_hostport *hp, u32 len, struct sk_buff **skbp)
{
	struct net_device *dev = hp->dev;
	struct sk_buff *skb;

	if (!(dev->flags & IFF_UP)) {
		DEV_STATS_INC(dev, rx_dropped);
		return NULL;
	}
	skb = netdev_alloc_skb_ip_align(dev, len);
	if (!skb) {
		DEV_STATS_INC(dev, rx_dropped);
		return NULL;
	}
	*skbp = skb;
	return skb_put(skb, len);
}

int pvpass_hostport_rx_commit(struct pvpass_hostport *hp, struct sk_buff *skb, const void *hdr)
{
	struct net_device *dev = hp->dev;
	u32 len = skb->len;

	if (virtio_net_hdr_to_skb(skb, hdr, true)) {
		DEV_STATS_INC(dev, rx_frame_errors);
		kfree_skb(skb);
		return -EINVAL;
	}
	skb->protocol = eth_type_trans(skb, dev);
	DEV_STATS_INC(dev, rx_packets);
	DEV_STATS_ADD(dev, rx_bytes, len);
	netif_rx(skb);
	return 0;
}
