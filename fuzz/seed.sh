#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from real objects: commits and tags made by git,
# signatures made by gpg and ssh-keygen with the test keys in fuzz/keys/, the
# policies and GitHub bodies in fixtures/, the v1 ledger's checkpoint and a
# receipt from it. Run from the repository root; it adds files, never removes.
#
#   fuzz/seed.sh            # keys are made once (fuzz/keys/, committed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
corpus=$root/fuzz/corpus
keys=$root/fuzz/keys
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$keys"
for t in commit tag openpgp ssh_signature allowed_signers policy checkpoint proof hook_stdin push_cert github_rest github_graphql; do
  mkdir -p "$corpus/$t"
done
seed() { # target name < content
  cat > "$corpus/$1/$2"
}

export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
# The test keys: made once, committed, public halves pinned by the harness.
# The secret halves stay on the machine that made them (.gitignore): a machine
# without them makes a new pair, and the harness then pins the new public key.
if [ ! -f "$keys/alice.secret.asc" ] || [ ! -f "$keys/alice_ssh" ]; then
  rm -f "$keys"/alice_ssh "$keys"/alice_ssh.pub
  gpg --batch --pinentry-mode loopback --passphrase "" --quick-gen-key 'Alice <alice@example.com>' ed25519 sign never 2>/dev/null
  gpg --armor --export alice@example.com > "$keys/alice.asc"
  gpg --armor --pinentry-mode loopback --passphrase '' --export-secret-keys alice@example.com > "$keys/alice.secret.asc"
  ssh-keygen -q -t ed25519 -N '' -C alice@example.com -f "$keys/alice_ssh"
  echo "alice@example.com namespaces=\"git\" $(cut -d' ' -f1,2 "$keys/alice_ssh.pub")" > "$keys/allowed_signers"
fi
gpg --batch --import "$keys/alice.secret.asc" 2>/dev/null

# The payload the harness verifies signatures over (git_audit::fuzzing::SIGNED_PAYLOAD).
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor Alice <alice@example.com> 1767225600 +0000\ncommitter Alice <alice@example.com> 1767225600 +0000\n\nfeat: fuzz seed\n' > "$work/payload"
gpg --batch --pinentry-mode loopback --passphrase '' --armor --detach-sign -o - "$work/payload" 2>/dev/null | seed openpgp armored.asc
gpg --batch --pinentry-mode loopback --passphrase '' --detach-sign -o - "$work/payload" 2>/dev/null | seed openpgp binary.sig
cp "$keys/alice_ssh" "$work/ssh_key" && chmod 600 "$work/ssh_key"
ssh-keygen -q -Y sign -n git -f "$work/ssh_key" "$work/payload"
seed ssh_signature good.sig < "$work/payload.sig"
# Kept beside the keys too: minimising renames corpus files, and the replay
# test checks these two verify good with the keys above.
cp "$corpus/openpgp/armored.asc" "$keys/seed-openpgp.asc"
cp "$corpus/ssh_signature/good.sig" "$keys/seed-ssh.sig"
cp "$keys/allowed_signers" "$corpus/allowed_signers/one"
cat > "$corpus/allowed_signers/options" <<'EOF'
# comments and options
*@example.com,bob@example.com cert-authority,namespaces="git,file",valid-after="20260101",valid-before="20270101Z" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ6gbJ6lFh3m0uBq3T0Jk8yO1m9mR6aC9o4rU7cZx1k
"quoted principal" ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC0
EOF

# Real commits and tags: plain, merge, signed both ways, with odd headers.
git init -q "$work/repo"
cd "$work/repo"
git config user.name Alice && git config user.email alice@example.com
git config gpg.program gpg && git config user.signingkey alice@example.com
echo a > a && git add a && git commit -q -m 'feat: first'
git commit -q --allow-empty -S -m 'feat: signed with OpenPGP'
git -c gpg.format=ssh -c user.signingkey="$work/ssh_key" commit -q --allow-empty -S -m 'feat: signed with SSH'
git checkout -q -b side HEAD~1 && git commit -q --allow-empty -m 'side' && git checkout -q - && git merge -q --no-edit side
git tag -a -m 'release 1' v1 && git tag -s -m 'release 2' v2 HEAD~1
git -c gpg.format=ssh -c user.signingkey="$work/ssh_key" tag -s -m 'release 3' v3 HEAD~2
n=0
for c in $(git rev-list --all); do
  n=$((n + 1)); git cat-file commit "$c" | seed commit "git-$n"
done
for t in v1 v2 v3; do git cat-file tag "$t" | seed tag "$t"; done
git cat-file commit HEAD~1 | sed 's/^author /author  /' | seed commit odd-spacing
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent 0000000000000000000000000000000000000000\nauthor A <a@b> 99999999999999999999 +9999\ncommitter A <a@b> 1 -0000\nencoding latin1\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n -----END PGP SIGNATURE-----\n\nmsg\n' | seed commit odd-headers
cd "$root"

# A push certificate as git writes it (signed with the OpenPGP test key).
cat > "$work/cert" <<'EOF'
certificate version 0.1
pusher Alice <alice@example.com> 1767225600 +0000
pushee /srv/git/api.git
nonce 1767225600-0123456789abcdef

0000000000000000000000000000000000000000 4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/heads/main
EOF
{ cat "$work/cert"; gpg --batch --pinentry-mode loopback --passphrase '' --armor --detach-sign -o - "$work/cert" 2>/dev/null; } | seed push_cert signed
{ cat "$work/cert"; cat "$corpus/ssh_signature/good.sig"; } | seed push_cert ssh-signed-wrong-payload

printf '0000000000000000000000000000000000000000 4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/heads/main\n4b825dc642cb6eb9a060e54bf8d69288fbee4904 0000000000000000000000000000000000000000 refs/tags/v1\n' | seed hook_stdin receive
printf 'refs/heads/main 4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/heads/main 0000000000000000000000000000000000000000\n' | seed hook_stdin pre-push
printf '%064d %064x refs/heads/sha256\n' 0 1 | seed hook_stdin sha256

for p in fixtures/policies/*.toml src/policy/starter.toml; do cp "$p" "$corpus/policy/$(basename "$p")"; done

cp tests/fixtures/ledger-v1/checkpoint.txt "$corpus/checkpoint/v1"
head -c 200 tests/fixtures/ledger-v1/checkpoint.txt | seed checkpoint cut
# A receipt from the v1 ledger, as `ledger prove` prints it.
bin=${GIT_AUDIT_BIN:-target/debug/git-audit}
if [ -x "$bin" ]; then
  cp tests/fixtures/ledger-v1/ledger.db tests/fixtures/ledger-v1/ledger.key "$work/"
  for s in 0 1 77 154; do
    "$bin" --ledger "$work/ledger.db" ledger prove "$s" > "$corpus/proof/prove-$s.json" 2>/dev/null || rm -f "$corpus/proof/prove-$s.json"
  done
fi

for f in pull review deployment deployment_status workflow_run environments approval repository pull_commit; do
  cp "fixtures/github/$f.json" "$corpus/github_rest/$f.json"
done
cp fixtures/github/graphql_pull_requests.json "$corpus/github_graphql/page.json"
echo "seeded: $(find "$corpus" -type f | wc -l) files in $corpus"
