//! known_hosts verification (for russh). OWNER: transport helper.
