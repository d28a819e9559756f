#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "jwt_auth.h"
#include "logbook/store/limits.h"
#include "logbook/store/status_macros.h"

namespace logbook::service {
namespace {

constexpr std::pair<uint32_t, const char*> kRoleNames[] = {
    {kReader, "reader"}, {kWriter, "writer"}, {kConsumer, "consumer"},
    {kOperator, "operator"}, {kAdmin, "admin"}};

bool IsNameChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@' || c == ':' ||
         c == '=' || c == '/';
}

std::string ScopeList(const Principal& p) {
  return p.scopes.empty() ? "*" : absl::StrJoin(p.scopes, ", ");
}

// Whether some stream id can be both of category `category` and start
// with `prefix` ("order" and "order-1", "ord" or "order").
bool Compatible(absl::string_view category, absl::string_view prefix) {
  const std::string dashed = absl::StrCat(category, "-");
  return prefix == category || absl::StartsWith(prefix, dashed) ||
         absl::StartsWith(dashed, prefix);
}

// `requested` within scope `scope`, or nullopt when no stream can be in both.
std::optional<store::EventFilter> Intersect(const store::EventFilter& requested,
                                            absl::string_view scope) {
  store::EventFilter f = requested;
  if (absl::EndsWith(scope, "*")) {
    const absl::string_view prefix = scope.substr(0, scope.size() - 1);
    if (f.stream_prefix.empty() || absl::StartsWith(prefix, f.stream_prefix)) {
      f.stream_prefix = std::string(prefix);
    } else if (!absl::StartsWith(f.stream_prefix, prefix)) {
      return std::nullopt;
    }
  } else if (f.category.empty()) {
    f.category = std::string(scope);
  } else if (f.category != scope) {
    return std::nullopt;
  }
  if (!f.category.empty() && !f.stream_prefix.empty() &&
      !Compatible(f.category, f.stream_prefix)) {
    return std::nullopt;
  }
  return f;
}

bool SameFilter(const store::EventFilter& a, const store::EventFilter& b) {
  return a.stream_id == b.stream_id && a.stream_prefix == b.stream_prefix &&
         a.category == b.category && a.event_types == b.event_types && a.scopes == b.scopes;
}

absl::Status LineError(absl::string_view path, int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, " line ", line, ": ", what));
}

}  // namespace

std::string RoleNames(uint32_t roles) {
  std::vector<std::string> names;
  for (const auto& [bit, name] : kRoleNames) {
    if (roles & bit) names.push_back(name);
  }
  return names.empty() ? "none" : absl::StrJoin(names, ",");
}

absl::StatusOr<uint32_t> RoleBit(absl::string_view name) {
  for (const auto& [bit, known] : kRoleNames) {
    if (name == known) return bit;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", name, "' is not one of reader, writer, consumer, operator, admin"));
}

absl::Status ValidateScope(absl::string_view scope) {
  const absl::string_view body = absl::StripSuffix(scope, "*");
  if (body.empty() || body.find('*') != absl::string_view::npos ||
      (!absl::EndsWith(scope, "*") && body.find('-') != absl::string_view::npos)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", scope, "' is neither a prefix ending in '*' (orders-*) nor a category (payments)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenTable> ParseTokensFile(absl::string_view text, absl::string_view path,
                                           const Quotas& defaults) {
  TokenTable table;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = line.substr(0, line.find('#'));
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields.size() != 5 && fields.size() != 6) {
      return LineError(path, number,
                       absl::StrCat("expected 5 or 6 fields (credential, principal, roles, "
                                    "tenant, scopes, optional quotas), not ",
                                    fields.size()));
    }
    const absl::string_view credential = fields[0];
    std::string key;
    if (absl::StartsWith(credential, "cert:")) {
      if (credential.size() == 5) return LineError(path, number, "cert: names no certificate");
      key = std::string(credential);
    } else {
      if (credential.size() != 64 ||
          credential.find_first_not_of("0123456789abcdefABCDEF") != absl::string_view::npos) {
        return LineError(path, number,
                         "credential: expected the 64 hex digits of a token's SHA-256 or "
                         "cert:NAME (a token itself never goes in this file)");
      }
      key = absl::AsciiStrToLower(credential);
    }
    Principal p;
    p.quotas = defaults;
    p.name = std::string(fields[1]);
    if (p.name.size() > 128 || !std::all_of(p.name.begin(), p.name.end(), IsNameChar)) {
      return LineError(path, number,
                       "principal: 1 to 128 bytes of letters, digits and . _ - @ : = /");
    }
    for (absl::string_view role : absl::StrSplit(fields[2], ',')) {
      absl::StatusOr<uint32_t> bit = RoleBit(role);
      if (!bit.ok()) return LineError(path, number, absl::StrCat("roles: ", bit.status().message()));
      p.roles |= *bit;
    }
    absl::StatusOr<std::string> tenant = TenantField(fields[3], p.roles);
    if (!tenant.ok()) return LineError(path, number, std::string(tenant.status().message()));
    p.tenant = *std::move(tenant);
    if (fields[4] != "*") {
      for (absl::string_view scope : absl::StrSplit(fields[4], ',')) {
        if (absl::Status valid = ValidateScope(scope); !valid.ok()) {
          return LineError(path, number, absl::StrCat("scopes: ", valid.message()));
        }
        p.scopes.emplace_back(scope);
      }
    }
    if (fields.size() == 6 && fields[5] != "-") {
      for (absl::string_view quota : absl::StrSplit(fields[5], ',')) {
        const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(quota, '=');
        uint32_t* slot = kv.first == "subscriptions" ? &p.quotas.subscriptions
                         : kv.first == "consumers"   ? &p.quotas.consumers
                         : kv.first == "appends"     ? &p.quotas.appends_in_flight
                                                     : nullptr;
        uint32_t n = 0;
        if (slot == nullptr || !absl::SimpleAtoi(kv.second, &n) || n > 1000000) {
          return LineError(path, number,
                           absl::StrCat("quotas: '", quota,
                                        "' is not subscriptions=N, consumers=N or appends=N "
                                        "(N from 0, no limit, to 1000000)"));
        }
        *slot = n;
      }
    }
    if (!table.emplace(key, std::move(p)).second) {
      return LineError(path, number, "this credential is on an earlier line too");
    }
  }
  return table;
}

absl::StatusOr<std::string> TenantField(absl::string_view value, uint32_t roles) {
  if (value == "-") return std::string(store::kDefaultTenant);
  if (value == store::kAllTenants) {
    if ((roles & kAdmin) == 0) {
      return absl::InvalidArgumentError(
          "tenant: '*' (every tenant) is for principals with the admin role");
    }
    return std::string(store::kAllTenants);
  }
  LOGBOOK_RETURN_IF_ERROR(store::ValidateTenant("tenant", value));
  return std::string(value);
}

absl::StatusOr<std::string> CallTenant(const Principal& p,
                                       std::optional<absl::string_view> requested) {
  if (requested) {
    LOGBOOK_RETURN_IF_ERROR(store::ValidateTenant(absl::StrCat(kTenantKey, " metadata"), *requested));
  }
  if (p.tenant == store::kAllTenants) {
    return std::string(requested ? *requested : store::kDefaultTenant);
  }
  if (requested && *requested != p.tenant) {
    return absl::PermissionDeniedError(absl::StrCat("principal '", p.name, "' belongs to tenant '",
                                                    p.tenant, "', not '", *requested, "'"));
  }
  return p.tenant;
}

store::Writer AsWriter(const Principal& p) { return {p.name, p.tenant}; }

std::string TokenDigest(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * sizeof(digest));
  for (unsigned char b : digest) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  return hex;
}

absl::StatusOr<std::string> BearerToken(absl::string_view header) {
  constexpr absl::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(header.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError(
        "authorization: expected 'Bearer <token>' (the Bearer scheme)");
  }
  const absl::string_view token = absl::StripAsciiWhitespace(header.substr(kScheme.size()));
  if (token.empty()) return absl::UnauthenticatedError("authorization: the token is empty");
  return std::string(token);
}

absl::Status RequireRole(const Principal& p, uint32_t any_of, absl::string_view call) {
  if ((p.roles & kAdmin) || (p.roles & any_of)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      call, " needs the role ", absl::StrReplaceAll(RoleNames(any_of), {{",", " or "}}), "; ",
      p.name, " has ", RoleNames(p.roles)));
}

absl::Status RequireStreamScope(const Principal& p, absl::string_view field,
                                absl::string_view stream_id) {
  if (p.scopes.empty()) return absl::OkStatus();
  for (const std::string& scope : p.scopes) {
    if (store::ScopeCovers(scope, stream_id)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(field, ": stream '", stream_id,
                                                  "' is outside the scopes of ", p.name, " (",
                                                  ScopeList(p), ")"));
}

absl::StatusOr<store::EventFilter> NarrowToScopes(const Principal& p,
                                                  const store::EventFilter& requested) {
  if (p.scopes.empty()) return requested;
  if (!requested.stream_id.empty()) {
    if (absl::Status s = RequireStreamScope(p, "filter.stream_id", requested.stream_id); !s.ok()) {
      return s;
    }
    return requested;
  }
  std::vector<store::EventFilter> overlaps;
  std::vector<std::string> overlapping;
  for (const std::string& scope : p.scopes) {
    std::optional<store::EventFilter> f = Intersect(requested, scope);
    if (!f) continue;
    if (SameFilter(*f, requested)) return requested;  // Within this scope already.
    overlaps.push_back(*std::move(f));
    overlapping.push_back(scope);
  }
  if (overlaps.size() == 1) return overlaps.front();
  if (overlaps.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "filter: reads nothing within the scopes of ", p.name, " (", ScopeList(p), ")"));
  }
  // Several: the request as it is, and only streams within one of them.
  store::EventFilter narrowed = requested;
  narrowed.scopes = std::move(overlapping);
  return narrowed;
}

absl::Status RequireWithinScopes(const Principal& p, absl::string_view field,
                                 const store::EventFilter& filter) {
  absl::StatusOr<store::EventFilter> narrowed = NarrowToScopes(p, filter);
  if (narrowed.ok() && SameFilter(*narrowed, filter)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(field, ": reaches beyond the scopes of ",
                                                  p.name, " (", ScopeList(p), ")"));
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(Options options) {
  std::unique_ptr<Authenticator> auth(new Authenticator(std::move(options)));
  {
    absl::MutexLock lock(&auth->mu_);
    auth->table_ = std::make_shared<TokenTable>();
  }
  if (auth->required()) {
    if (absl::Status s = auth->Reload(); !s.ok()) return s;
  }
  return auth;
}

absl::Status Authenticator::Reload() {
  auto read = [](const std::string& path, absl::string_view what) -> absl::StatusOr<std::string> {
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat(what, " ", path, ": cannot be read"));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  auto table = std::make_shared<TokenTable>();
  if (!options_.tokens_file.empty()) {
    absl::StatusOr<std::string> text = read(options_.tokens_file, "tokens file");
    if (!text.ok()) return text.status();
    absl::StatusOr<TokenTable> parsed =
        ParseTokensFile(*text, options_.tokens_file, options_.default_quotas);
    if (!parsed.ok()) return parsed.status();
    *table = *std::move(parsed);
  }
  std::shared_ptr<JwtPolicy> jwt;
  if (!options_.jwt_keys_file.empty()) {
    absl::StatusOr<std::string> text = read(options_.jwt_keys_file, "JWT keys");
    if (!text.ok()) return text.status();
    absl::StatusOr<std::vector<JwtKey>> keys = ParseJwtKeys(*text, options_.jwt_keys_file);
    if (!keys.ok()) return keys.status();
    jwt = std::make_shared<JwtPolicy>(
        JwtPolicy{*std::move(keys), options_.jwt_issuer, options_.jwt_audience});
  }
  absl::MutexLock lock(&mu_);
  table_ = std::move(table);
  jwt_ = std::move(jwt);
  return absl::OkStatus();
}

size_t Authenticator::size() const {
  absl::MutexLock lock(&mu_);
  return table_->size();
}

size_t Authenticator::jwt_keys() const {
  absl::MutexLock lock(&mu_);
  return jwt_ == nullptr ? 0 : jwt_->keys.size();
}

absl::StatusOr<Principal> Authenticator::Authenticate(
    std::optional<absl::string_view> header, const std::vector<std::string>& cert_names) const {
  std::shared_ptr<const TokenTable> table;
  std::shared_ptr<const JwtPolicy> jwt;
  {
    absl::MutexLock lock(&mu_);
    table = table_;
    jwt = jwt_;
  }
  if (header) {
    absl::StatusOr<std::string> token = BearerToken(*header);
    if (!token.ok()) return token.status();
    if (jwt != nullptr && LooksLikeJwt(*token)) {
      return VerifyJwt(*token, *jwt, absl::Now(), options_.default_quotas);
    }
    const std::string digest = TokenDigest(*token);
    // Digests are compared, not tokens: a lookup's timing tells nothing
    // of a token, and the admin token is compared in constant time.
    if (!options_.admin_token.empty()) {
      const std::string admin = TokenDigest(options_.admin_token);
      if (CRYPTO_memcmp(digest.data(), admin.data(), digest.size()) == 0) {
        return Principal{"admin", kAllRoles, {}, false, options_.default_quotas,
                         store::kAllTenants};
      }
    }
    if (auto it = table->find(digest); it != table->end()) return it->second;
    return absl::UnauthenticatedError("authorization: unknown token");
  }
  for (const std::string& name : cert_names) {
    if (auto it = table->find("cert:" + name); it != table->end()) return it->second;
  }
  if (!required()) {
    return Principal{"anonymous", kAllRoles & ~kAdmin, {}, true, options_.default_quotas,
                     store::kAllTenants};
  }
  if (!cert_names.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the client certificate (", absl::StrJoin(cert_names, ", "),
                     ") names no principal of the tokens file, and the call has no token"));
  }
  return absl::UnauthenticatedError(
      "this server requires authentication: send the metadata 'authorization: Bearer <token>' "
      "or a client certificate");
}

}  // namespace logbook::service
