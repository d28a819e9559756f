// Who is calling, and what they may do (docs/security.md).
//
// A caller is a Principal: a name, roles and stream scopes. It comes from
// the bearer token of the call (`authorization: Bearer <token>`), looked up
// by its SHA-256 in the tokens file (--auth-tokens) or equal to the admin
// token (--admin-token); or, without a token, from the client certificate
// of an mTLS connection, whose common name or a subject alternative name is
// looked up as `cert:<name>` in the same file. With no tokens file, a call
// without a token is anonymous: every role but admin, every stream, every
// tenant (logbookd then listens on loopback only).
//
// Everything below the Authenticator is a pure function.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "logbook/store/types.h"

namespace logbook::service {

struct JwtPolicy;  // jwt_auth.h

// Roles, as bits; a principal holds any set of them.
enum Role : uint32_t {
  kReader = 1,     // Read, subscribe, verify, load snapshots, list groups.
  kWriter = 2,     // Append, save snapshots.
  kConsumer = 4,   // Join consumer groups (Consume).
  kOperator = 8,   // Create and manage groups and parked events, delete streams, sign checkpoints.
  kAdmin = 16,     // Redact; and everything the others may.
};
inline constexpr uint32_t kAllRoles = kReader | kWriter | kConsumer | kOperator | kAdmin;

// "reader,writer" (in the order above); "none" for 0.
std::string RoleNames(uint32_t roles);

// What one principal may hold at once, over all its connections and every
// logbookd-side call; 0: no limit. Beyond it a call is RESOURCE_EXHAUSTED
// (quotas.h).
struct Quotas {
  uint32_t subscriptions = 0;      // Open Subscribe calls.
  uint32_t consumers = 0;          // Open Consume calls.
  uint32_t appends_in_flight = 0;  // Append calls not yet answered.
};

struct Principal {
  std::string name;  // "anonymous" for an anonymous caller.
  uint32_t roles = 0;
  // Stream scopes; empty: every stream. "orders-*": stream ids starting
  // with "orders-"; "payments": the category payments (stream ids whose part
  // before the first '-' is "payments").
  std::vector<std::string> scopes;
  bool anonymous = false;
  Quotas quotas = {};
  // The tenant whose streams it works on (docs/security.md "Tenants"), or
  // store::kAllTenants: a cross-tenant principal, which names the tenant of
  // each call (CallTenant).
  std::string tenant = store::kDefaultTenant;
};

// The gRPC metadata key that names the tenant of a call.
inline constexpr char kTenantKey[] = "logbook-tenant";

// The principals of a tokens file by credential: the lowercase hex SHA-256
// of a token, or "cert:<name>".
using TokenTable = absl::flat_hash_map<std::string, Principal>;

// The bit of role `name` ("reader"); INVALID_ARGUMENT naming the roles
// there are otherwise. Pure.
absl::StatusOr<uint32_t> RoleBit(absl::string_view name);

// OK when `scope` is a prefix ending in '*' ("orders-*") or a category
// ("payments"); INVALID_ARGUMENT saying so otherwise. Pure.
absl::Status ValidateScope(absl::string_view scope);

// Parses a tokens file: one principal per line, five or six fields
// separated by blanks, '#' to the end of a line is a comment:
//   <sha256 hex of the token | cert:NAME>  <principal>  <roles>  <tenant>  <scopes>  [quotas]
// roles: a comma list of reader, writer, consumer, operator, admin; tenant:
// TenantField; scopes: '*' or a comma list of
// "prefix*" and category names; quotas: '-' or a comma list of
// subscriptions=N, consumers=N, appends=N (appends in flight; 0: no limit),
// each one not given taken from `defaults`. INVALID_ARGUMENT naming `path`,
// the line and the field. Pure.
absl::StatusOr<TokenTable> ParseTokensFile(absl::string_view text, absl::string_view path,
                                           const Quotas& defaults = {});

// The tenant of a tokens file's tenant field or a JWT's tenant claim: '-'
// the default tenant; '*' every tenant (store::kAllTenants), for principals
// with the admin role only; otherwise a tenant's name (store::
// ValidateTenant). INVALID_ARGUMENT saying why not. Pure.
absl::StatusOr<std::string> TenantField(absl::string_view value, uint32_t roles);

// The tenant a call of `p` works on: `p`'s own, which `requested` (the
// call's logbook-tenant metadata, if any) may repeat; a cross-tenant
// principal's is `requested`, else the default tenant. PERMISSION_DENIED
// when `p` belongs to another tenant than `requested`; INVALID_ARGUMENT
// when `requested` is no tenant's name. Pure.
absl::StatusOr<std::string> CallTenant(const Principal& p,
                                       std::optional<absl::string_view> requested);

// The writer of what `p` appends, deletes or redacts: its name and its
// tenant (after CallTenant: the call's). Pure.
store::Writer AsWriter(const Principal& p);

// Lowercase hex SHA-256 of `token`: what a tokens file holds. Pure.
std::string TokenDigest(absl::string_view token);

// The token of an `authorization` header value ("Bearer <token>", the
// scheme in any case); INVALID_ARGUMENT-free: UNAUTHENTICATED naming the
// expected form. Pure.
absl::StatusOr<std::string> BearerToken(absl::string_view header);

// OK when `p` holds one of `any_of` (admin holds every role); otherwise
// PERMISSION_DENIED naming the call and the role it needs. Pure.
absl::Status RequireRole(const Principal& p, uint32_t any_of, absl::string_view call);

// OK when `p` may touch stream `stream_id`; PERMISSION_DENIED naming the
// field, the stream and the principal's scopes. Pure.
absl::Status RequireStreamScope(const Principal& p, absl::string_view field,
                                absl::string_view stream_id);

// OK when every stream `filter` can match lies within one scope of `p`;
// PERMISSION_DENIED naming `field` otherwise. Pure.
absl::Status RequireWithinScopes(const Principal& p, absl::string_view field,
                                 const store::EventFilter& filter);

// The filter a read of many streams (ReadAll, Subscribe) runs with for
// `p`: `requested` unchanged when it lies within one scope of `p`; narrowed
// to the one scope it overlaps; or, overlapping several, bound to streams
// within one of those (EventFilter::scopes). PERMISSION_DENIED when it
// overlaps none. Pure.
absl::StatusOr<store::EventFilter> NarrowToScopes(const Principal& p,
                                                  const store::EventFilter& requested);

// Authenticates calls. Thread-safe; Reload may run while calls are served.
class Authenticator {
 public:
  struct Options {
    std::string tokens_file;  // Empty: anonymous callers are served.
    std::string admin_token;  // Empty: none; else a principal "admin" with every role.
    // Of every principal whose line sets none, the admin token's and the
    // anonymous caller's (one principal for every anonymous call).
    Quotas default_quotas = {};
    // JWT callers (jwt_auth.h): the trusted public keys (PEM or JWKS;
    // empty: JWTs are not accepted), and the iss and aud they must carry.
    std::string jwt_keys_file;
    std::string jwt_issuer;
    std::string jwt_audience;
  };

  // Reads the tokens file (INVALID_ARGUMENT or NOT_FOUND naming it).
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(Options options);

  // Whether callers must authenticate (a tokens file or JWT keys are
  // configured).
  bool required() const {
    return !options_.tokens_file.empty() || !options_.jwt_keys_file.empty();
  }
  // Re-reads the tokens file and the JWT keys; on an error keeps what it had.
  absl::Status Reload();
  // Principals in the tokens file now.
  size_t size() const;
  // JWT keys trusted now.
  size_t jwt_keys() const;

  // The caller of a call with `authorization` header `header` (nullopt:
  // none; a bearer token is a JWT or a tokens-file token) over a
  // connection whose client certificate names `cert_names` (common name
  // and subject alternative names; empty without mTLS).
  // UNAUTHENTICATED saying what is wrong, never echoing the token.
  absl::StatusOr<Principal> Authenticate(std::optional<absl::string_view> header,
                                         const std::vector<std::string>& cert_names) const;

 private:
  explicit Authenticator(Options options) : options_(std::move(options)) {}

  const Options options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenTable> table_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const JwtPolicy> jwt_ ABSL_GUARDED_BY(mu_);  // Null: no JWTs.
};

}  // namespace logbook::service
