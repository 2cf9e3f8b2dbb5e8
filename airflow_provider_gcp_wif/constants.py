"""Names and values the provider writes in more than one module: the connection type, the token-type URNs, the
signed GetCallerIdentity request, environment variables, and the jwt route's IAM policy values.

Plain values only: importing this module imports nothing (it is read at plugin and provider discovery).
"""

from __future__ import annotations

#: The connection type, its default connection id, and the legacy ``extra__gcp_wif__<key>`` form of its extras.
CONN_TYPE = "gcp_wif"
DEFAULT_CONN_ID = "gcp_wif_default"
LEGACY_PREFIX = f"extra__{CONN_TYPE}__"

#: Google's defaults: the universe and the scope of tokens when a connection names none.
DEFAULT_UNIVERSE_DOMAIN = "googleapis.com"
# A Google project number: the one grammar of resource_names.PROJECT_NUMBER and the connection form's hint (fields).
PROJECT_NUMBER_PATTERN = "[0-9]{1,20}"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: The scope of the federated token when it is only used to impersonate (google-auth's ``_IAM_SCOPE``): enough for
#: IAM Credentials, nothing else.
IAM_SCOPE = "https://www.googleapis.com/auth/iam"

#: ``subject_token_type`` of the two routes: a signed GetCallerIdentity request (sigv4, an AWS provider) and a JWT
#: from AWS STS GetWebIdentityToken (jwt, an OIDC provider; credential configs may also say ``id_token``).
AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
JWT_SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"

#: The signed GetCallerIdentity request: the query, the URL for an STS host (``resource_names.sts_host``), and the
#: ``regional_cred_verification_url`` template of google-auth's ``aws1`` credential source (``{region}``).
GET_CALLER_IDENTITY_QUERY = "?Action=GetCallerIdentity&Version=2011-06-15"
GET_CALLER_IDENTITY_URL = "https://{host}" + GET_CALLER_IDENTITY_QUERY
REGIONAL_CRED_VERIFICATION_URL = "https://sts.{region}.amazonaws.com" + GET_CALLER_IDENTITY_QUERY
#: The header that binds a subject token to its audience (signed in by this provider).
TARGET_RESOURCE_HEADER = "x-goog-cloud-target-resource"

#: The provider's section of the Airflow configuration (``[gcp_wif] allowed_endpoint_hosts``, ``token_cache``).
CONFIG_SECTION = "gcp_wif"
#: The deployment's endpoint allow-list (Airflow config ``[gcp_wif] allowed_endpoint_hosts``).
ALLOWED_HOSTS_ENV = "AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS"
#: The seed's variables that are not connection fields (the others are in :mod:`airflow_provider_gcp_wif.fields`).
AWS_ACCOUNT_ID_ENV = "AWS_ACCOUNT_ID"
AWS_ROLE_NAME_ENV = "AWS_ROLE_NAME"

#: The jwt route: the one JWT signing algorithm both AWS STS (RS256, ES384) and Google's OIDC providers (RS256,
#: ES256) accept; GetWebIdentityToken's own default DurationSeconds, which the role's IAM policy allows at most;
#: the name of that inline policy (``gcp-wif setup``, the fix texts).
JWT_SIGNING_ALGORITHM = "RS256"
JWT_DURATION_SECONDS = 300
JWT_POLICY_NAME = "gcp-wif-web-identity-token"

#: The longest single value (an id, an email, a URL, a region, ...) a parser reads: longer ones are refused, with a
#: truncated excerpt, before any regular expression sees them.
MAX_TEXT = 2048
