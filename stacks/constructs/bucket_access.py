from __future__ import annotations

from aws_cdk import aws_iam as iam

from stacks.constructs.dataset_bucket import DatasetBucket
from stacks.nag import acknowledge_wildcards

READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
DELETE_ACTIONS = ("s3:DeleteObject",)


def grant_prefix(
    role: iam.Role, store: DatasetBucket, prefix: str, *, write: bool = False, delete: bool = False
) -> None:
    """Grant `role` exactly the object actions it needs under one key prefix, and listing of that prefix only.

    Explicit actions instead of `bucket.grant_*`: those grant wildcard actions (`s3:GetObject*`, `s3:List*`)
    on the whole bucket, more than any of our roles needs.
    """
    actions = list(READ_ACTIONS)
    key_actions = ["kms:Decrypt"]
    if write:
        actions += WRITE_ACTIONS
        key_actions += ["kms:GenerateDataKey"]
    if delete:
        actions += DELETE_ACTIONS
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[store.bucket.arn_for_objects(f"{prefix}*")])
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[store.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        )
    )
    role.add_to_principal_policy(iam.PolicyStatement(actions=key_actions, resources=[store.key.key_arn]))
    objects = store.bucket.arn_for_objects(f"{prefix}*")
    reason = f"Scoped to the {prefix} prefix of the dataset bucket, whose object keys are only known at run time."
    acknowledge_wildcards(role, [(objects, reason)])
