-- Sign-in throttling shared by every worker and server: one counter per key ('login:user:…', 'login:addr:…', …).
CREATE TABLE throttle (
    key          text PRIMARY KEY,
    hits         integer NOT NULL,
    max_hits     integer NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);
CREATE INDEX throttle_window_start ON throttle (window_start);
