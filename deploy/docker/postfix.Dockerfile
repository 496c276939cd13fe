# The upstream MTA of the compose stack: Debian's Postfix with deploy/postfix/upstream applied.
# Build context: deploy/ (see compose.yaml).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY postfix/upstream/main.cf.snippet /tmp/main.cf.snippet
COPY postfix/upstream/master.cf.snippet /tmp/master.cf.snippet
COPY docker/postfix-demo.cf /tmp/postfix-demo.cf
RUN postconf -e "myhostname=mta.example.jp" "maillog_file=/dev/stdout" \
 && grep -v '^\s*#' /tmp/main.cf.snippet | grep -v '^\s*$' | while read -r line; do postconf -e "$line"; done \
 && grep -v '^\s*#' /tmp/postfix-demo.cf | grep -v '^\s*$' | while read -r line; do postconf -e "$line"; done \
 && cat /tmp/master.cf.snippet >> /etc/postfix/master.cf \
 && postfix check
EXPOSE 10025
CMD ["postfix", "start-fg"]
