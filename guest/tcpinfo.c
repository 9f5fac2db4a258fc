// SPDX-License-Identifier: GPL-2.0
/*
 * tcpinfo [<port>]: the TCP_INFO and socket memory of the established IPv4
 * TCP socket that has sent the most bytes (with <port>: only sockets with
 * neither port <port>, so the bench agent's own connection is left out),
 * as one line of key=value, for the benchmark guests' busybox
 * userland, which has no `ss -tim`. It asks the kernel the way ss does:
 * an inet_diag dump over NETLINK_SOCK_DIAG with INET_DIAG_INFO and
 * INET_DIAG_SKMEMINFO. bench/guest-agent samples it while netperf runs, to
 * tell what limits the sender: the receive window (rwnd_limited_us), the
 * send buffer (sndbuf_limited_us), the congestion window (busy and
 * unacked near cwnd), or the application (the socket idle: the window's
 * time minus busy_us), and how much is queued below TCP (wmem_alloc: what
 * TCP small queues counts).
 */
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_ESTABLISHED 1

struct best {
	int found;
	struct tcp_info info;
	__u32 mem[SK_MEMINFO_VARS];
	unsigned int sport, dport;
};

static void consider(struct nlmsghdr *h, unsigned int skip_port, struct best *b)
{
	struct inet_diag_msg *m = NLMSG_DATA(h);
	int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
	struct rtattr *a = (struct rtattr *)(m + 1);
	struct tcp_info info;
	__u32 mem[SK_MEMINFO_VARS];
	int have_info = 0;

	if (len < 0)
		return;
	if (skip_port && (ntohs(m->id.idiag_sport) == skip_port ||
			  ntohs(m->id.idiag_dport) == skip_port))
		return;
	memset(&info, 0, sizeof(info));
	memset(mem, 0, sizeof(mem));
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		size_t n = RTA_PAYLOAD(a);

		if (a->rta_type == INET_DIAG_INFO) {
			memcpy(&info, RTA_DATA(a), n < sizeof(info) ? n : sizeof(info));
			have_info = 1;
		} else if (a->rta_type == INET_DIAG_SKMEMINFO) {
			memcpy(mem, RTA_DATA(a), n < sizeof(mem) ? n : sizeof(mem));
		}
	}
	if (!have_info || (b->found && info.tcpi_bytes_sent <= b->info.tcpi_bytes_sent))
		return;
	b->found = 1;
	b->info = info;
	memcpy(b->mem, mem, sizeof(mem));
	b->sport = ntohs(m->id.idiag_sport);
	b->dport = ntohs(m->id.idiag_dport);
}

int main(int argc, char **argv)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	unsigned int skip_port = argc > 1 ? (unsigned int)atoi(argv[1]) : 0;
	static char buf[65536];
	struct best b;
	int s, done = 0;

	memset(&b, 0, sizeof(b));
	s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0) {
		perror("tcpinfo: socket");
		return 1;
	}
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.sdiag_family = AF_INET;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = 1 << TCP_ESTABLISHED;
	req.r.idiag_ext = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
	if (sendto(s, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0) {
		perror("tcpinfo: sendto");
		return 1;
	}
	while (!done) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n <= 0) {
			perror("tcpinfo: recv");
			return 1;
		}
		for (; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				done = 1;
				break;
			}
			consider(h, skip_port, &b);
		}
	}
	close(s);
	if (!b.found) {
		puts("none");
		return 0;
	}
	printf("sport=%u dport=%u bytes_sent=%llu bytes_acked=%llu data_segs_out=%u segs_out=%u "
	       "segs_in=%u cwnd=%u ssthresh=%u mss=%u rtt_us=%u min_rtt_us=%u unacked=%u "
	       "notsent=%u snd_wnd=%u pacing_rate=%llu delivery_rate=%llu busy_us=%llu "
	       "rwnd_limited_us=%llu sndbuf_limited_us=%llu retrans=%u wmem_alloc=%u sndbuf=%u "
	       "wmem_queued=%u\n",
	       b.sport, b.dport, (unsigned long long)b.info.tcpi_bytes_sent,
	       (unsigned long long)b.info.tcpi_bytes_acked, b.info.tcpi_data_segs_out,
	       b.info.tcpi_segs_out, b.info.tcpi_segs_in, b.info.tcpi_snd_cwnd,
	       b.info.tcpi_snd_ssthresh, b.info.tcpi_snd_mss, b.info.tcpi_rtt, b.info.tcpi_min_rtt,
	       b.info.tcpi_unacked, b.info.tcpi_notsent_bytes, b.info.tcpi_snd_wnd,
	       (unsigned long long)b.info.tcpi_pacing_rate,
	       (unsigned long long)b.info.tcpi_delivery_rate,
	       (unsigned long long)b.info.tcpi_busy_time,
	       (unsigned long long)b.info.tcpi_rwnd_limited,
	       (unsigned long long)b.info.tcpi_sndbuf_limited, b.info.tcpi_total_retrans,
	       b.mem[SK_MEMINFO_WMEM_ALLOC], b.mem[SK_MEMINFO_SNDBUF],
	       b.mem[SK_MEMINFO_WMEM_QUEUED]);
	return 0;
}
