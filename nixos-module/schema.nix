# NixOS option declarations built from the daemon's own JSON Schema
# (declaration.schema.json, printed by `nginx-ha schema` and checked for
# staleness in CI). Names, types, ranges, defaults, descriptions and
# examples all come from the Rust types, so the options cannot drift from
# what the daemon accepts. Only the mapping of schema constructs onto
# option types lives here; a construct it does not know stops evaluation
# with the schema path, rather than turning into a loose type.
#
# Required keys become nullable options (default null) and `missing`
# lists the ones left unset, so the module can assert with a message that
# names the option instead of failing on an undefined value.
{ lib, formats }:
let
  inherit (lib) mkOption types;

  schema = builtins.fromJSON (builtins.readFile ./declaration.schema.json);

  typeList = s: if builtins.isList (s.type or null) then s.type else lib.optional (s ? type) s.type;
  isNull = s: typeList s == [ "null" ];
  # Option<T>: `type: [T, "null"]`, or `anyOf: [T, {type: null}]` for
  # inlined objects.
  nullableInner = s:
    if builtins.length (typeList s) == 2 && builtins.elem "null" (typeList s) then
      s // { type = builtins.head (builtins.filter (t: t != "null") (typeList s)); }
    else if s ? anyOf && builtins.length s.anyOf == 2 && lib.any isNull s.anyOf then
      (builtins.head (builtins.filter (b: !(isNull b)) s.anyOf))
      // lib.filterAttrs (k: _: k == "description" || k == "default" || k == "examples") s
    else null;

  fail = path: what: throw "nixos-module/schema.nix: ${lib.concatStringsSep "." path}: ${what}";

  # Formats of numbers (uint64, int64, ...) only say how Rust stores them;
  # the range is in minimum/maximum.
  stringType = path: s:
    if s ? enum then types.enum s.enum
    else if s ? format then formats.${s.format} or (fail path "unknown string format \"${s.format}\"")
    else types.str;

  intType = path: s:
    if s ? enum then types.enum s.enum
    else if s ? minimum && s ? maximum then types.ints.between s.minimum s.maximum
    else if (s.minimum or null) == 0 then types.ints.unsigned
    else if s ? minimum || s ? maximum then fail path "one-sided integer range"
    else types.int;

  # The option type for a schema value.
  typeOf = path: s:
    let inner = nullableInner s; in
    if inner != null then types.nullOr (typeOf path inner)
    else if s ? oneOf then types.oneOf (lib.imap0 (i: typeOf (path ++ [ "oneOf${toString i}" ])) s.oneOf)
    else if s ? const then types.enum [ s.const ]
    else
      {
        boolean = types.bool;
        integer = intType path s;
        string = stringType path s;
        array =
          let item = typeOf (path ++ [ "*" ]) (s.items or (fail path "array without items")); in
          if (s.minItems or 0) > 0 then types.nonEmptyListOf item else types.listOf item;
        object =
          if s ? properties then types.submodule { options = optionsOf path s; }
          else if builtins.isAttrs (s.additionalProperties or null) then
            types.attrsOf (typeOf (path ++ [ "<name>" ]) s.additionalProperties)
          else fail path "object without properties or additionalProperties";
      }.${s.type or "none"} or (fail path "unsupported schema: ${builtins.toJSON (builtins.attrNames s)}");

  isObject = s: (s.type or null) == "object";

  # One option. Objects with properties nest as submodules that always
  # exist (default {}), so their own fields' defaults apply; required
  # scalars and lists are nullable, reported by `missing` when unset.
  optionOf = path: required: s:
    let
      nested = isObject s && s ? properties;
      nullable = nullableInner s != null;
      type = typeOf path s;
      base = {
        description = s.description or (fail path "no description: add a doc comment to the Rust field");
      } // lib.optionalAttrs (s ? examples) { example = builtins.head s.examples; };
    in
    mkOption (base // (
      if nested then { inherit type; default = { }; }
      else if s ? default then { inherit type; inherit (s) default; }
      else if nullable then { inherit type; default = null; }
      else if required then { type = types.nullOr type; default = null; defaultText = lib.literalMD "none: must be set"; }
      else fail path "optional key without a default"
    ));

  optionsOf = path: s:
    lib.mapAttrs
      (name: sub: optionOf (path ++ [ name ]) (builtins.elem name (s.required or [ ])) sub)
      s.properties;

  # Paths (lists of names) of required keys left null in `value`, which
  # follows the schema `s`.
  missing = path: s: value:
    let inner = nullableInner s; in
    if inner != null then (if value == null then [ ] else missing path inner value)
    else if isObject s && s ? properties then
      lib.concatLists
        (lib.mapAttrsToList
          (name: sub:
            let v = value.${name} or null; in
            if v == null then lib.optional (builtins.elem name (s.required or [ ])) (path ++ [ name ])
            else missing (path ++ [ name ]) sub v)
          s.properties)
    else if isObject s && builtins.isAttrs (s.additionalProperties or null) then
      lib.concatLists (lib.mapAttrsToList (name: missing (path ++ [ name ]) s.additionalProperties) value)
    else if (s.type or null) == "array" && builtins.isList value then
      lib.concatLists (lib.imap0 (i: missing (path ++ [ (toString i) ]) s.items) value)
    else [ ];

  # Every leaf of the schema (a key whose value is not an object with
  # properties), as a path with `<name>` for map keys and `*` for list
  # items, with the schema of that leaf. Used by the tests that hold the
  # options against the schema.
  leaves = path: s:
    let inner = nullableInner s; in
    if inner != null then leaves path inner
    else if isObject s && s ? properties then
      lib.concatLists (lib.mapAttrsToList (name: leaves (path ++ [ name ])) s.properties)
    else if isObject s && builtins.isAttrs (s.additionalProperties or null)
      && isObject s.additionalProperties then
      leaves (path ++ [ "<name>" ]) s.additionalProperties
    else if (s.type or null) == "array" && isObject (s.items or { }) && s.items ? properties then
      leaves (path ++ [ "*" ]) s.items
    else [{ inherit path; schema = s; }];
in
{
  inherit schema missing leaves;
  options = optionsOf [ ] schema;
  # The schema of one top-level key (e.g. "nginx"), Option<T> unwrapped.
  sub = name:
    let s = schema.properties.${name}; in
    if nullableInner s != null then nullableInner s else s;
  optionsOfObject = optionsOf;
}
