"""An independent check of git-audit's SLSA attestations: each line on stdin
is a DSSE envelope; securesystemslib verifies its signature with the given
Ed25519 key, and the in-toto attestation bindings (protobuf, strict: unknown
fields fail) validate its Statement and, for a VSA, its predicate.

Usage: python slsa_verify.py PUBLIC_KEY_HEX KEYID COMMIT < note
Prints one line per envelope: PREDICATE_TYPE LEVELS."""

import json
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

public, keyid, commit = sys.argv[1:4]
key = SSlibKey(keyid, "ed25519", "ed25519", {"public": public})
for line in sys.stdin:
    if not line.strip():
        continue
    envelope = Envelope.from_dict(json.loads(line))
    assert envelope.payload_type == "application/vnd.in-toto+json", envelope.payload_type
    envelope.verify([key], 1)
    statement = json.loads(envelope.payload)
    pb = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    assert statement["subject"][0]["digest"]["gitCommit"] == commit, statement["subject"]
    levels = ""
    if statement["predicateType"] == "https://slsa.dev/verification_summary/v1":
        predicate = dict(statement["predicate"])
        # The SLSA VSA v1 spec makes verifiedLevels an array of strings; the
        # in-toto proto (vsa.proto, field 7) types it as one string. Follow the
        # spec: check the array here, every other field through the proto.
        verified = predicate.pop("verifiedLevels")
        assert isinstance(verified, list) and verified and all(isinstance(v, str) for v in verified), verified
        assert any(v.startswith("SLSA_SOURCE_LEVEL_") for v in verified), verified
        vsa = json_format.ParseDict(predicate, vsa_pb2.VerificationSummary())
        assert vsa.verifier.id and vsa.resource_uri.startswith("git+"), statement["predicate"]
        assert vsa.verification_result == "PASSED"
        assert vsa.time_verified.seconds > 0
        levels = ",".join(verified)
    print(statement["predicateType"], levels)
