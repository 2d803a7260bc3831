-- Open plays by their last report, for the sweep that ends plays left open (a listener gone
-- without a word, a process that died): it runs every few minutes and must not scan the table.
CREATE INDEX play_sessions_open ON play_sessions (updated_at) WHERE ended_at IS NULL;
