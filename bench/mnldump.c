// The baseline for bench/conntrack-dump.mjs: the leanest possible ctnetlink dump with libmnl — one
// dump request, mnl_cb_run over every message, and the fields netmon needs (orig tuple, counters, id)
// parsed with mnl_attr_parse_nested. Run inside the namespace: nsenter --net=/run/netns/NS ./mnldump
#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned long long entries, bytes_sum;

static int nested_cb(const struct nlattr *attr, void *data) {
  const struct nlattr **tb = data;
  tb[mnl_attr_get_type(attr)] = attr;
  return MNL_CB_OK;
}

static int data_cb(const struct nlmsghdr *nlh, void *data) {
  const struct nlattr *tb[CTA_MAX + 1] = {0};
  mnl_attr_parse(nlh, sizeof(struct nfgenmsg), nested_cb, tb);
  if (tb[CTA_TUPLE_ORIG]) {
    const struct nlattr *tuple[CTA_TUPLE_MAX + 1] = {0}, *ip[CTA_IP_MAX + 1] = {0}, *proto[CTA_PROTO_MAX + 1] = {0};
    mnl_attr_parse_nested(tb[CTA_TUPLE_ORIG], nested_cb, tuple);
    if (tuple[CTA_TUPLE_IP]) mnl_attr_parse_nested(tuple[CTA_TUPLE_IP], nested_cb, ip);
    if (tuple[CTA_TUPLE_PROTO]) mnl_attr_parse_nested(tuple[CTA_TUPLE_PROTO], nested_cb, proto);
  }
  for (int d = CTA_COUNTERS_ORIG; d <= CTA_COUNTERS_REPLY; d++) {
    if (!tb[d]) continue;
    const struct nlattr *c[CTA_COUNTERS_MAX + 1] = {0};
    mnl_attr_parse_nested(tb[d], nested_cb, c);
    if (c[CTA_COUNTERS_BYTES]) bytes_sum += be64toh(mnl_attr_get_u64(c[CTA_COUNTERS_BYTES]));
  }
  if (tb[CTA_ID]) (void)ntohl(mnl_attr_get_u32(tb[CTA_ID]));
  entries++;
  return MNL_CB_OK;
}

int main(int argc, char **argv) {
  (void)argv;
  // With any argument: exit at once, so the bench can time the process start alone and take it off.
  if (argc > 1) return 0;
  struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) { perror("mnl_socket"); return 1; }
  char buf[1 << 16];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = time(NULL);
  struct nfgenmsg *nfh = mnl_nlmsg_put_extra_header(nlh, sizeof(struct nfgenmsg));
  nfh->nfgen_family = AF_UNSPEC;
  nfh->version = NFNETLINK_V0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) { perror("send"); return 1; }
  unsigned portid = mnl_socket_get_portid(nl), seq = nlh->nlmsg_seq;
  int ret;
  ssize_t n;
  while ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
    ret = mnl_cb_run(buf, n, seq, portid, data_cb, NULL);
    if (ret <= MNL_CB_STOP) break;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%llu %.1f\n", entries, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
  mnl_socket_close(nl);
  return 0;
}
