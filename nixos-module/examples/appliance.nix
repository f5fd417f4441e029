# The NAS appliance's target (images/nas-target.nix, imported by images/nas.nix).
{
  imports = [ ../../images/nas-target.nix ];
}
