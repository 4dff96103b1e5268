-- Issue 8: lease tokens per job attempt, mail that failed for good, mailed tokens kept
-- out of the mail body.

-- The keyed hash of the token handed to the attempt holding the lease (never the token):
-- heartbeat, complete and fail must present the token, so a worker whose lease ran out
-- and was claimed again cannot touch the live attempt.
ALTER TABLE jobs ADD COLUMN lease_token_hash text;

-- A mail that can never be sent (a header that cannot be built, a 5xx for its
-- recipient) is set aside with its reason instead of blocking the outbox.
ALTER TABLE mail_outbox ADD COLUMN failed_at timestamptz;
-- The single-use token the body links to. The body holds the placeholder {token}, filled
-- in only when the mail is sent; the token is erased once the mail is sent or failed.
ALTER TABLE mail_outbox ADD COLUMN token text;
DROP INDEX mail_outbox_pending;
CREATE INDEX mail_outbox_pending ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
-- What retention prunes: mail sent or failed long enough ago.
CREATE INDEX mail_outbox_done ON mail_outbox (coalesce(sent_at, failed_at))
    WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL;
-- Platform-level audit rows (no organization) are pruned by age.
CREATE INDEX audit_logs_platform_time ON audit_logs (created_at) WHERE organization_id IS NULL;
