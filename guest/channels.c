// SPDX-License-Identifier: GPL-2.0
/*
 * channels <ifname> [<combined>]: what `ethtool -l` / `ethtool -L <ifname>
 * combined N` do (SIOCETHTOOL, ETHTOOL_GCHANNELS / ETHTOOL_SCHANNELS), for
 * the demo guests' busybox userland, which has no ethtool. Prints
 * "combined <now> max <max>" after any change.
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

static int channels(int s, const char *name, struct ethtool_channels *ch)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_data = (void *)ch;
	return ioctl(s, SIOCETHTOOL, &ifr);
}

int main(int argc, char **argv)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	int s;

	if (argc < 2) {
		fprintf(stderr, "usage: channels <ifname> [<combined>]\n");
		return 2;
	}
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || channels(s, argv[1], &ch)) {
		perror("ETHTOOL_GCHANNELS");
		return 1;
	}
	if (argc > 2) {
		ch.cmd = ETHTOOL_SCHANNELS;
		ch.combined_count = (unsigned int)strtoul(argv[2], NULL, 0);
		if (channels(s, argv[1], &ch)) {
			perror("ETHTOOL_SCHANNELS");
			return 1;
		}
		ch.cmd = ETHTOOL_GCHANNELS;
		if (channels(s, argv[1], &ch)) {
			perror("ETHTOOL_GCHANNELS");
			return 1;
		}
	}
	printf("combined %u max %u\n", ch.combined_count, ch.max_combined);
	close(s);
	return 0;
}
