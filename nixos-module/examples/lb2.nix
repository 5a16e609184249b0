# Node lb2: the shared cluster plus what differs per node.
{ ... }:
{
  imports = [ ./cluster.nix ];
  networking.hostName = "lb2";
  services.nginxHa.node.priority = 100;
}
