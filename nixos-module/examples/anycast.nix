# An anycast node: no VRRP, the service addresses announced with BGP to two
# upstream routers (an IPv4 and an IPv6 session each), BFD on every session.
# Every node of the anycast group has this file with its own hostName,
# routerId and addresses.
{ ... }:
{
  networking.hostName = "edge1";
  services.nginxHa = {
    enable = true;
    node.priority = 100;

    anycast = {
      prefixes = [ "203.0.113.80/32" "2001:db8:80::1/128" ];
      announceAfter = "2s";
      bgp = {
        routerId = "192.0.2.11";
        localAs = 64512;
        neighbors = {
          upstream1 = { address = "192.0.2.1"; as = 64500; };
          upstream2 = { address = "192.0.2.2"; as = 64500; };
          upstream1_v6 = { address = "2001:db8::1"; as = 64500; };
          upstream2_v6 = { address = "2001:db8::2"; as = 64500; };
        };
        bfd = { interval = 100; multiplier = 3; };
      };
    };
  };
}
