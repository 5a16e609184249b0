# A node with an IPv6 instance over multicast (VRRPv3 to ff02::12) next to
# an IPv4 one: one family per instance, the same VRID may serve both.
{ ... }:
{
  networking.hostName = "lb6";
  services.nginxHa = {
    enable = true;
    node.priority = 120;
    instances.web4 = {
      interface = "eth1";
      virtualRouterId = 52;
      virtualIps = [ "198.51.100.10/24" ];
      advertInterval = "200ms";
    };
    instances.web6 = {
      interface = "eth1";
      virtualRouterId = 52;
      virtualIps = [ "2001:db8:52::10/64" ];
      advertInterval = "200ms";
    };
    checks.nginx.statusUrl = "http://[::1]:8081/nginx_status";
  };
}
