-- examples/perdition/parking.lua — the passdb of parking.conf: every login is a temporary
-- failure, which Dovecot answers with NO [UNAVAILABLE].
function auth_passdb_lookup(req)
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "not routed by perdition (frozen, disabled or unknown)"
end
