"""Finding this person's other devices on the LAN: zeroconf ``_mirror._tcp.local.``
with rotating tags derived from the group secret (:mod:`.tags`), the zeroconf
threads bridged into trio (:mod:`.zeroconf_bridge`), browsing and advertising
(:mod:`.lan`). ``spec/discovery.md`` is the contract."""
