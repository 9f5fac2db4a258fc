// SPDX-License-Identifier: GPL-2.0
/*
 * coalesce <ifname> [<rx-usecs> <rx-frames> <tx-usecs> <tx-frames>]: what
 * `ethtool -c` / `ethtool -C <ifname> rx-usecs U rx-frames F tx-usecs U
 * tx-frames F` do (SIOCETHTOOL, ETHTOOL_GCOALESCE / ETHTOOL_SCOALESCE), for
 * the demo guests' busybox userland, which has no ethtool. virtio_net turns
 * a change into VIRTIO_NET_CTRL_NOTF_COAL commands on its control queue.
 * Prints "rx-usecs U rx-frames F tx-usecs U tx-frames F" after any change.
 */
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int coalesce(int s, const char *name, struct ethtool_coalesce *c)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_data = (void *)c;
	return ioctl(s, SIOCETHTOOL, &ifr);
}

int main(int argc, char **argv)
{
	struct ethtool_coalesce c = { .cmd = ETHTOOL_GCOALESCE };
	int s;

	if (argc != 2 && argc != 6) {
		fprintf(stderr, "usage: coalesce <ifname> [<rx-usecs> <rx-frames> <tx-usecs> <tx-frames>]\n");
		return 2;
	}
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || coalesce(s, argv[1], &c)) {
		perror("ETHTOOL_GCOALESCE");
		return 1;
	}
	if (argc == 6) {
		c.cmd = ETHTOOL_SCOALESCE;
		c.rx_coalesce_usecs = (unsigned int)strtoul(argv[2], NULL, 0);
		c.rx_max_coalesced_frames = (unsigned int)strtoul(argv[3], NULL, 0);
		c.tx_coalesce_usecs = (unsigned int)strtoul(argv[4], NULL, 0);
		c.tx_max_coalesced_frames = (unsigned int)strtoul(argv[5], NULL, 0);
		if (coalesce(s, argv[1], &c)) {
			perror("ETHTOOL_SCOALESCE");
			return 1;
		}
		c.cmd = ETHTOOL_GCOALESCE;
		if (coalesce(s, argv[1], &c)) {
			perror("ETHTOOL_GCOALESCE");
			return 1;
		}
	}
	printf("rx-usecs %u rx-frames %u tx-usecs %u tx-frames %u\n", c.rx_coalesce_usecs,
	       c.rx_max_coalesced_frames, c.tx_coalesce_usecs, c.tx_max_coalesced_frames);
	close(s);
	return 0;
}
