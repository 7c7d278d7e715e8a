"""Lints the SAM template after the SAM transform, as CloudFormation will see it, offline.

cfn-lint on the source template does not see what only the transform creates: for example a
circular dependency between a function and the HTTP API whose generated definition names that
function's ARN. CodeUri values are replaced by a placeholder S3 URI, as `sam package` would.

Usage: python infra/lint_transformed.py infra/template.yaml  (with the deploy venv's python)
"""

import json
import os
import subprocess
import sys
import tempfile

from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template attaches no managed policy, so none need looking up (no AWS call)."""

    def load(self):
        return {}


def main(path):
    template, errors = decode_str(open(path, encoding="utf-8").read())
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    template = json.loads(json.dumps(template, default=str))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://placeholder-bucket/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    transformed = transform(template, {}, NoManagedPolicies())
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(transformed, out)
    try:
        cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
        status = subprocess.call([cfn_lint, out.name])
    finally:
        os.unlink(out.name)
    if status == 0:
        print(f"{path}: the transformed template ({len(transformed['Resources'])} resources) passes cfn-lint")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
