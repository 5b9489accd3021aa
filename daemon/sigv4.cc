#include "daemon/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdio>
#include <optional>
#include <span>
#include <stdexcept>

#include "base/text.h"

namespace thatchd::sigv4 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kTerminator = "aws4_request";
constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
// Client text quoted in a message is cut there: the message is only a hint.
constexpr size_t kQuoteLimit = 256;

template <typename T>
using Result = std::variant<T, Refusal>;

Refusal incomplete(std::string message) {
  return {"IncompleteSignatureException", std::move(message)};
}

Refusal invalid(std::string message) {
  return {"InvalidSignatureException", std::move(message)};
}

// ---- text ----

char asciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string asciiLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) { return asciiLower(c); });
  return out;
}

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && isSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
  return text;
}

// SigV4's Trimall: no outer blanks, inner runs of blanks as one space.
void appendTrimmedAll(std::string& out, std::string_view value) {
  bool pendingSpace = false;
  for (char c : trim(value)) {
    if (isSpace(c)) {
      pendingSpace = true;
      continue;
    }
    if (pendingSpace) out += ' ';
    pendingSpace = false;
    out += c;
  }
}

// Splits `text` at each `separator`, empty pieces included.
std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  for (size_t start = 0;;) {
    size_t end = text.find(separator, start);
    pieces.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return pieces;
    start = end + 1;
  }
}

// The non-empty runs of `text` between any of `separators`.
std::vector<std::string_view> tokens(std::string_view text, std::string_view separators) {
  std::vector<std::string_view> out;
  for (size_t start = text.find_first_not_of(separators); start != std::string_view::npos;) {
    size_t end = std::min(text.find_first_of(separators, start), text.size());
    out.push_back(text.substr(start, end - start));
    start = text.find_first_not_of(separators, end);
  }
  return out;
}

// ---- percent-encoding ----

bool isUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// Every byte but the unreserved ones (and '/' when `keepSlash`) as %XX.
std::string uriEncode(std::string_view text, bool keepSlash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (isUnreserved(c) || (keepSlash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded; a '%' not followed by two hex digits stays itself, and so
// does '+' (RFC 3986, not HTML forms).
std::string uriDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int high = hexValue(text[i + 1]), low = hexValue(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// RFC 3986's dot-segment removal, with empty segments removed as well: what
// AWS's SDKs sign for services other than S3 ("//a/./b/../c/" -> "/a/c/").
std::string removeDotSegments(std::string_view path) {
  std::vector<std::string_view> kept;
  for (std::string_view segment : split(path, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
    } else {
      kept.push_back(segment);
    }
  }
  std::string out = path.starts_with('/') ? "/" : "";
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out += '/';
    out += kept[i];
  }
  if (path.ends_with('/') && !kept.empty()) out += '/';
  return out;
}

// ---- time ----

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

// Reads `count` decimal digits at text[pos].
std::optional<int> digits(std::string_view text, size_t pos, size_t count) {
  if (pos + count > text.size()) return std::nullopt;
  int value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

std::optional<int64_t> unixSeconds(int year, int month, int day, int hour, int minute, int second) {
  year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                      std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  int64_t dayNumber = sys_days{date}.time_since_epoch().count();
  return dayNumber * 86400 + hour * 3600 + minute * 60 + second;
}

// ISO 8601 basic format, as X-Amz-Date carries it: "20150830T123600Z".
std::optional<int64_t> parseIsoBasic(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return std::nullopt;
  auto year = digits(text, 0, 4), month = digits(text, 4, 2), day = digits(text, 6, 2);
  auto hour = digits(text, 9, 2), minute = digits(text, 11, 2), second = digits(text, 13, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  return unixSeconds(*year, *month, *day, *hour, *minute, *second);
}

// The HTTP Date form, "Sun, 30 Aug 2015 12:36:00 GMT", with a numeric zone
// ("-0000") accepted too: that is what botocore sends.
std::optional<int64_t> parseHttpDate(std::string_view text) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (size_t comma = text.find(','); comma != std::string_view::npos) text = text.substr(comma + 1);
  std::vector<std::string_view> words = tokens(text, " \t");
  if (words.size() != 5) return std::nullopt;
  auto monthAt = std::find(kMonths.begin(), kMonths.end(), words[1]);
  std::string_view clock = words[3], zone = words[4];
  auto day = words[0].size() <= 2 ? digits(words[0], 0, words[0].size()) : std::nullopt;
  auto year = words[2].size() == 4 ? digits(words[2], 0, 4) : std::nullopt;
  if (!day || !year || monthAt == kMonths.end() || clock.size() != 8 || clock[2] != ':' ||
      clock[5] != ':') {
    return std::nullopt;
  }
  auto hour = digits(clock, 0, 2), minute = digits(clock, 3, 2), second = digits(clock, 6, 2);
  if (!hour || !minute || !second) return std::nullopt;
  int offsetSeconds = 0;
  if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-')) {
    auto zoneHours = digits(zone, 1, 2), zoneMinutes = digits(zone, 3, 2);
    if (!zoneHours || !zoneMinutes || *zoneMinutes > 59) return std::nullopt;
    offsetSeconds = (zone[0] == '-' ? -1 : 1) * (*zoneHours * 3600 + *zoneMinutes * 60);
  } else if (zone != "GMT" && zone != "UTC" && zone != "Z") {
    return std::nullopt;
  }
  int month = static_cast<int>(monthAt - kMonths.begin()) + 1;
  auto local = unixSeconds(*year, month, *day, *hour, *minute, *second);
  if (!local) return std::nullopt;
  return *local - offsetSeconds;
}

std::string formatIsoBasic(int64_t unixSeconds) {
  auto dayNumber =
      std::chrono::floor<days>(std::chrono::sys_seconds{std::chrono::seconds{unixSeconds}});
  year_month_day date{dayNumber};
  int64_t secondOfDay = unixSeconds - dayNumber.time_since_epoch().count() * 86400;
  char text[48];
  std::snprintf(text, sizeof text, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(secondOfDay / 3600), static_cast<int>(secondOfDay / 60 % 60),
                static_cast<int>(secondOfDay % 60));
  return text;
}

// ---- crypto ----

using Digest = std::array<unsigned char, 32>;

std::span<const unsigned char> bytes(std::string_view text) {
  return {reinterpret_cast<const unsigned char*>(text.data()), text.size()};
}

Digest sha256(std::string_view data) {
  Digest digest;
  unsigned int length = 0;
  // An empty view may have no data pointer; libcrypto wants one.
  const char* start = data.empty() ? "" : data.data();
  if (EVP_Digest(start, data.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("libcrypto: EVP_Digest(SHA-256) failed");
  }
  return digest;
}

Digest hmacSha256(std::span<const unsigned char> key, std::string_view data) {
  Digest digest;
  unsigned int length = 0;
  if (key.size() > INT_MAX) throw std::length_error("HMAC key too long");
  // An empty view may have no data pointer; libcrypto wants one.
  const char* start = data.empty() ? "" : data.data();
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(start), data.size(), digest.data(),
           &length) == nullptr) {
    throw std::runtime_error("libcrypto: HMAC(SHA-256) failed");
  }
  return digest;
}

// Equal strings in time that depends on their length only.
bool constantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// ---- the request's parts ----

// The request's headers by lowercase name; the values of one name stay in
// the order received. Sorted once, so that each look-up is a binary search.
class HeaderIndex {
 public:
  struct Entry {
    std::string name;
    std::string_view value;
  };

  explicit HeaderIndex(const std::vector<std::pair<std::string, std::string>>& headers) {
    entries_.reserve(headers.size());
    for (const auto& [name, value] : headers) entries_.push_back({asciiLower(trim(name)), value});
    std::stable_sort(entries_.begin(), entries_.end(),
                     [](const Entry& a, const Entry& b) { return a.name < b.name; });
  }

  // The values of header `name` (lowercase), in the order received.
  std::span<const Entry> all(std::string_view name) const {
    auto [first, last] = std::equal_range(entries_.begin(), entries_.end(), name, Less{});
    return {first, last};
  }

  // The canonical value of header `name`: its values trimmed, joined by ','.
  std::optional<std::string> canonical(std::string_view name) const {
    std::span<const Entry> values = all(name);
    if (values.empty()) return std::nullopt;
    std::string out;
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += ',';
      appendTrimmedAll(out, values[i].value);
    }
    return out;
  }

 private:
  struct Less {
    bool operator()(const Entry& entry, std::string_view name) const { return entry.name < name; }
    bool operator()(std::string_view name, const Entry& entry) const { return name < entry.name; }
  };
  std::vector<Entry> entries_;
};

// The parameters of "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
struct Authorization {
  std::string_view credential;
  std::string_view signedHeaders;
  std::string_view signature;
};

// Splits the Authorization header; the request's time header is checked here
// too, because AWS reports everything missing in one message.
Result<Authorization> parseAuthorization(std::string_view value, bool hasDateHeader) {
  Authorization parsed;
  bool hasCredential = false, hasSignedHeaders = false, hasSignature = false;
  if (value.starts_with(kAlgorithm) && value.size() > kAlgorithm.size() &&
      isSpace(value[kAlgorithm.size()])) {
    // Parameters are separated by commas or blanks, as AWS reads them.
    for (std::string_view piece : tokens(value.substr(kAlgorithm.size()), ", \t")) {
      size_t equals = piece.find('=');
      if (equals == std::string_view::npos) {
        return incomplete(base::quoted(piece, kQuoteLimit) +
                          " not a valid key=value pair (missing equal-sign) in Authorization "
                          "header: " +
                          base::quoted(value, kQuoteLimit) + ".");
      }
      std::string_view key = piece.substr(0, equals), param = piece.substr(equals + 1);
      struct Slot {
        std::string_view name;
        std::string_view* value;
        bool* seen;
      };
      for (Slot slot : {Slot{"Credential", &parsed.credential, &hasCredential},
                        Slot{"SignedHeaders", &parsed.signedHeaders, &hasSignedHeaders},
                        Slot{"Signature", &parsed.signature, &hasSignature}}) {
        if (key != slot.name) continue;
        if (*slot.seen) {
          return incomplete("Authorization header has more than one '" + std::string(slot.name) +
                            "' parameter.");
        }
        *slot.seen = true;
        *slot.value = param;
      }
    }
  }
  std::string missing;
  if (!hasCredential) missing += "Authorization header requires 'Credential' parameter. ";
  if (!hasSignature) missing += "Authorization header requires 'Signature' parameter. ";
  if (!hasSignedHeaders) missing += "Authorization header requires 'SignedHeaders' parameter. ";
  if (!hasDateHeader) {
    missing +=
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
  }
  if (!missing.empty()) {
    return incomplete(missing + "Authorization=" + base::printable(value, kQuoteLimit));
  }
  return parsed;
}

// "AKID/20150830/us-east-1/lambda/aws4_request"
struct CredentialScope {
  std::string_view accessKeyId, date, region, service, terminator;
  std::string text() const {  // the scope in the string to sign: all but the key id
    return std::string(date) + "/" + std::string(region) + "/" + std::string(service) + "/" +
           std::string(terminator);
  }
};

Result<CredentialScope> parseCredential(std::string_view credential) {
  std::vector<std::string_view> parts = split(credential, '/');
  if (parts.size() != 5 || std::ranges::any_of(parts, &std::string_view::empty)) {
    return incomplete(
        "Credential must have exactly 5 slash-delimited elements, e.g. "
        "keyid/date/region/service/term, got " +
        base::quoted(credential, kQuoteLimit));
  }
  return CredentialScope{parts[0], parts[1], parts[2], parts[3], parts[4]};
}

// When the client says it signed the request, as the string to sign has it.
struct RequestTime {
  std::string iso;  // "20150830T123600Z"
  int64_t unixSeconds;
};

// X-Amz-Date, or else Date.
Result<RequestTime> parseRequestTime(const HeaderIndex& headers) {
  if (auto amzDate = headers.canonical("x-amz-date")) {
    if (auto seconds = parseIsoBasic(*amzDate)) return RequestTime{*amzDate, *seconds};
    return incomplete("Date must be in ISO-8601 'basic format'. Got " +
                      base::quoted(*amzDate, kQuoteLimit) +
                      ". See http://en.wikipedia.org/wiki/ISO_8601");
  }
  std::string date = headers.canonical("date").value_or("");
  std::optional<int64_t> seconds = parseIsoBasic(date);
  if (!seconds) seconds = parseHttpDate(date);
  if (!seconds) {
    return incomplete("Date must be in RFC 1123 or ISO-8601 'basic format'. Got " +
                      base::quoted(date, kQuoteLimit) + ".");
  }
  return RequestTime{formatIsoBasic(*seconds), *seconds};
}

// The scope must name this service, the request's day and the SigV4 terminator.
std::optional<Refusal> checkScope(const CredentialScope& scope, const RequestTime& time,
                                  std::string_view expectedService) {
  std::string_view day = std::string_view(time.iso).substr(0, 8);
  if (scope.date != day) {
    return invalid(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: " +
        base::quoted(scope.date, kQuoteLimit) + " != '" + std::string(day) + "'.");
  }
  if (scope.terminator != kTerminator) {
    return invalid("Credential should be scoped with a valid terminator: 'aws4_request', not " +
                   base::quoted(scope.terminator, kQuoteLimit) + ". ");
  }
  if (scope.service != expectedService) {
    return invalid("Credential should be scoped to correct service: '" +
                   std::string(expectedService) + "'. ");
  }
  return std::nullopt;
}

std::optional<Refusal> checkClock(const RequestTime& time, int64_t now) {
  if (time.unixSeconds < now - kMaxClockSkewSeconds) {
    return invalid("Signature expired: " + time.iso + " is now earlier than " +
                   formatIsoBasic(now - kMaxClockSkewSeconds) + " (" + formatIsoBasic(now) +
                   " - 5 min.)");
  }
  if (time.unixSeconds > now + kMaxClockSkewSeconds) {
    return invalid("Signature not yet current: " + time.iso + " is still later than " +
                   formatIsoBasic(now + kMaxClockSkewSeconds) + " (" + formatIsoBasic(now) +
                   " + 5 min.)");
  }
  return std::nullopt;
}

// The canonical headers block ("name:value\n" each), for a SignedHeaders list
// that must be lowercase, sorted, without repeats, name host, and name only
// headers the request has.
Result<std::string> canonicalHeaders(std::string_view signedHeaders, const HeaderIndex& headers) {
  std::vector<std::string_view> names = split(signedHeaders, ';');
  bool wellFormed = std::ranges::all_of(names, [](std::string_view name) {
    return !name.empty() && std::ranges::none_of(name, [](char c) { return c >= 'A' && c <= 'Z'; });
  });
  if (!wellFormed || !std::ranges::is_sorted(names, std::ranges::less_equal{})) {
    return incomplete(
        "SignedHeaders must list lowercase header names, sorted and separated by ';', got " +
        base::quoted(signedHeaders, kQuoteLimit) + ".");
  }
  if (!std::ranges::binary_search(names, std::string_view("host"))) {
    return invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  std::string block;
  for (std::string_view name : names) {
    std::optional<std::string> value = headers.canonical(name);
    if (!value) {
      return incomplete("Signed header " + base::quoted(name, kQuoteLimit) +
                        " is not in the request.");
    }
    block.append(name).append(":").append(*value).append("\n");
  }
  return block;
}

// The hash that stands for the body in the canonical request.
struct PayloadHash {
  std::string hex;
  bool bodySigned;
};

Result<PayloadHash> payloadHash(const HeaderIndex& headers, std::string_view body) {
  std::optional<std::string> claimed = headers.canonical("x-amz-content-sha256");
  if (claimed == kUnsignedPayload) return PayloadHash{std::string(kUnsignedPayload), false};
  std::string actual = base::hexText(sha256(body));
  if (claimed && *claimed != actual) {
    return invalid("The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  return PayloadHash{actual, true};
}

std::string signature(const std::string& secret, const CredentialScope& scope,
                      std::string_view stringToSign) {
  std::string keyMaterial = "AWS4" + secret;
  Digest key = hmacSha256(bytes(keyMaterial), scope.date);
  OPENSSL_cleanse(keyMaterial.data(), keyMaterial.size());
  key = hmacSha256(key, scope.region);
  key = hmacSha256(key, scope.service);
  key = hmacSha256(key, scope.terminator);
  return base::hexText(hmacSha256(key, stringToSign));
}

}  // namespace

std::string canonicalUri(std::string_view path) {
  std::string normalized = removeDotSegments(path);
  return normalized.empty() ? "/" : uriEncode(normalized, /*keepSlash=*/true);
}

std::string canonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (std::string_view param : split(query, '&')) {
    if (param.empty()) continue;
    size_t equals = std::min(param.find('='), param.size());
    std::string_view value = equals < param.size() ? param.substr(equals + 1) : "";
    params.emplace_back(uriEncode(uriDecode(param.substr(0, equals)), false),
                        uriEncode(uriDecode(value), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out.append(name).append("=").append(value);
  }
  return out;
}

std::variant<Verified, Refusal> verify(const Request& request, const SecretLookup& secretOf,
                                       std::string_view expectedService, int64_t nowUnixSeconds) {
  HeaderIndex headers(request.headers);
  std::span<const HeaderIndex::Entry> authorizations = headers.all("authorization");
  if (authorizations.empty()) {
    return Refusal{"MissingAuthenticationTokenException", "Missing Authentication Token"};
  }
  if (authorizations.size() > 1) {
    return incomplete("The request has more than one Authorization header.");
  }

  bool hasDateHeader = !headers.all("x-amz-date").empty() || !headers.all("date").empty();
  auto authorization = parseAuthorization(trim(authorizations[0].value), hasDateHeader);
  if (auto* refusal = std::get_if<Refusal>(&authorization)) return *refusal;
  const Authorization& auth = std::get<Authorization>(authorization);

  auto credential = parseCredential(auth.credential);
  if (auto* refusal = std::get_if<Refusal>(&credential)) return *refusal;
  const CredentialScope& scope = std::get<CredentialScope>(credential);

  auto requestTime = parseRequestTime(headers);
  if (auto* refusal = std::get_if<Refusal>(&requestTime)) return *refusal;
  const RequestTime& time = std::get<RequestTime>(requestTime);

  if (auto refusal = checkScope(scope, time, expectedService)) return *refusal;
  auto signedBlock = canonicalHeaders(auth.signedHeaders, headers);
  if (auto* refusal = std::get_if<Refusal>(&signedBlock)) return *refusal;
  if (auto refusal = checkClock(time, nowUnixSeconds)) return *refusal;
  auto payload = payloadHash(headers, request.body);
  if (auto* refusal = std::get_if<Refusal>(&payload)) return *refusal;

  const std::string* secret = secretOf(scope.accessKeyId);
  if (secret == nullptr) {
    return Refusal{"UnrecognizedClientException",
                   "The security token included in the request is invalid."};
  }

  std::string_view target = request.target;
  size_t question = std::min(target.find('?'), target.size());
  std::string query = question < target.size() ? canonicalQuery(target.substr(question + 1)) : "";
  std::string canonicalRequest = request.method + "\n" + canonicalUri(target.substr(0, question)) +
                                 "\n" + query + "\n" + std::get<std::string>(signedBlock) + "\n" +
                                 std::string(auth.signedHeaders) + "\n" +
                                 std::get<PayloadHash>(payload).hex;
  std::string stringToSign = std::string(kAlgorithm) + "\n" + time.iso + "\n" + scope.text() +
                             "\n" + base::hexText(sha256(canonicalRequest));
  if (!constantTimeEqual(signature(*secret, scope, stringToSign), auth.signature)) {
    return invalid(
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.");
  }
  return Verified{std::string(scope.accessKeyId), std::string(scope.region),
                  std::string(scope.service), std::get<PayloadHash>(payload).bodySigned};
}

}  // namespace thatchd::sigv4
