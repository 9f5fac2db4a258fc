// SPDX-License-Identifier: GPL-2.0
/*
 * patterns <port> <seconds>: receive UDP datagrams on <port> for <seconds>
 * and check each one's payload: an 8-byte little-endian sequence number,
 * then bytes (seq * 31 + i) & 0xff. A datagram whose bytes differ was
 * written wrong into guest memory (for the migration test: a frame landed
 * in a page the destination did not get). Prints a line every 5 s and a
 * final one:
 *   patterns: ok <n> bad <n> lost <n> last <seq>
 * ("lost": sequence numbers skipped; UDP may lose, it may not corrupt).
 * The sender is scripts/patterns-send.py.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

int main(int argc, char **argv)
{
	unsigned char buf[2048];
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 1 };
	unsigned long ok = 0, bad = 0, lost = 0;
	uint64_t last = 0;
	long end, next;
	int s;

	if (argc < 3) {
		fprintf(stderr, "usage: patterns <port> <seconds>\n");
		return 2;
	}
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a))) {
		perror("patterns: socket");
		return 1;
	}
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	end = now() + atol(argv[2]);
	next = now() + 5;
	while (now() < end) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);

		if (n >= 8) {
			uint64_t seq;
			ssize_t i;
			int good = 1;

			memcpy(&seq, buf, 8);
			for (i = 8; i < n; i++)
				if (buf[i] != (unsigned char)((seq * 31 + (uint64_t)i) & 0xff))
					good = 0;
			if (good) {
				ok++;
				if (seq > last + 1 && last)
					lost += seq - last - 1;
				if (seq > last)
					last = seq;
			} else {
				bad++;
			}
		}
		if (now() >= next) {
			printf("patterns: ok %lu bad %lu lost %lu last %llu\n", ok, bad, lost,
			       (unsigned long long)last);
			fflush(stdout);
			next = now() + 5;
		}
	}
	printf("patterns: final ok %lu bad %lu lost %lu last %llu\n", ok, bad, lost,
	       (unsigned long long)last);
	return 0;
}
