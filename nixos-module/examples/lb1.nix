# Node lb1: the shared cluster plus what differs per node.
{ ... }:
{
  imports = [ ./cluster.nix ];
  networking.hostName = "lb1"; # becomes services.nginxHa.node.name
  services.nginxHa.node.priority = 150;
}
