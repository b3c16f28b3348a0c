#include "agent/audit/chain_verifier.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include "agent/audit/chain_tail.hpp"
#include "agent/audit/hash_chain.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {
namespace {

// What the verifier reads of a record: the fields every record starts with, and for an
// audit_file_start header the fields the writer puts right after its event.
struct Record {
  bool ok = false;  // starts with {"seq":N,"prev":"<64 hex>",
  std::uint64_t seq = 0;
  std::string_view prev;
  bool header = false;
  bool previous_torn = false;
  std::string_view chain;
  std::string_view key_id;
};

bool is_hex64(std::string_view s) {
  return s.size() == 64 && std::ranges::all_of(s, [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The text of "key":"VALUE" after `from`, up to the next quote (agent-written values only).
std::string_view string_field(std::string_view line, std::string_view key_quoted) {
  const auto at = line.find(key_quoted);
  if (at == std::string_view::npos) return {};
  const auto begin = at + key_quoted.size();
  const auto end = line.find('"', begin);
  if (end == std::string_view::npos) return {};
  return line.substr(begin, end - begin);
}

Record parse(std::string_view line) {
  Record r;
  r.seq = leading_seq(line);
  if (r.seq == 0) return r;
  constexpr std::string_view kPrev = R"(,"prev":")";
  const auto at = line.find(kPrev);  // right after the digits: leading_seq checked the comma
  const auto digits_end = line.find(',');
  if (at != digits_end || line.size() < at + kPrev.size() + 65) return r;
  r.prev = line.substr(at + kPrev.size(), 64);
  if (!is_hex64(r.prev) || line[at + kPrev.size() + 64] != '"') return r;
  r.ok = true;
  // The event follows "pid":N, which follows ts, host and instance; none of those holds an
  // unescaped quote, so the first "pid": after ts is the record's own. Searched from just after
  // the fixed-width ts, so that only the host name is scanned.
  constexpr std::string_view kPid = "\"pid\":";
  constexpr std::size_t kTsField = 35;  // ,"ts":"YYYY-MM-DDTHH:MM:SS.uuuuuuZ"
  const std::size_t from = at + kPrev.size() + 65 + kTsField;
  if (from >= line.size()) return r;
  const void* pid = ::memmem(line.data() + from, line.size() - from, kPid.data(), kPid.size());
  if (pid == nullptr) return r;
  std::size_t pos =
      static_cast<std::size_t>(static_cast<const char*>(pid) - line.data()) + kPid.size();
  while (pos < line.size() && line[pos] >= '0' && line[pos] <= '9') ++pos;
  constexpr std::string_view kHeader = R"(,"event":"audit_file_start")";
  if (line.substr(pos, kHeader.size()) != kHeader) return r;
  r.header = true;
  const std::string_view rest = line.substr(pos + kHeader.size());
  r.chain = string_field(rest, R"(,"chain":")");
  r.key_id = string_field(rest, R"(,"key_id":")");
  r.previous_torn = rest.find(",\"previous_torn\":true") != std::string_view::npos;
  return r;
}

// Lines of one file: [begin, end) without the LF; `torn` for a last line without one.
class Lines {
 public:
  explicit Lines(std::string_view data) : data_(data) {}
  bool next(std::string_view& line, bool& torn) {
    if (pos_ >= data_.size()) return false;
    const void* lf = std::memchr(data_.data() + pos_, '\n', data_.size() - pos_);
    const std::size_t end =
        lf == nullptr ? data_.size()
                      : static_cast<std::size_t>(static_cast<const char*>(lf) - data_.data());
    line = data_.substr(pos_, end - pos_);
    torn = lf == nullptr;
    pos_ = end + 1;
    return true;
  }
  [[nodiscard]] std::size_t pos() const { return pos_; }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

// Where in `data` (from `pos`) the line holding `seq` is, as a count of lines after the
// current one (1 = the next line); 0 when no line does.
std::uint64_t find_seq_ahead(std::string_view data, std::size_t pos, std::uint64_t seq) {
  Lines lines(data.substr(std::min(pos, data.size())));
  std::string_view line;
  bool torn = false;
  for (std::uint64_t n = 1; lines.next(line, torn); ++n) {
    if (leading_seq(line) == seq) return n;
  }
  return 0;
}

std::string_view peek_line(std::string_view data, std::size_t pos) {
  Lines lines(data.substr(std::min(pos, data.size())));
  std::string_view line;
  bool torn = false;
  if (!lines.next(line, torn) || torn) return {};
  return line;
}

class Verifier {
 public:
  explicit Verifier(std::string_view key) : chain_(key) {}

  ChainReport run(const std::vector<ChainInput>& files) {
    report_.files = files.size();
    for (std::size_t f = 0; f < files.size(); ++f) {
      if (!verify_file(files[f], f + 1 == files.size())) return report_;
    }
    return report_;
  }

 private:
  bool fail(const ChainInput& file, std::uint64_t line, const char* kind, std::string why) {
    report_.verdict = ChainVerdict::broken;
    report_.file = file.name;
    report_.line = line;
    report_.kind = kind;
    report_.why = std::move(why);
    return false;
  }

  bool check_key(const ChainInput& file, std::uint64_t n, const Record& r) {
    if (r.chain == "sha256" && !chain_.keyed()) return true;
    if (r.chain == "hmac-sha256" && chain_.keyed()) {
      if (r.key_id == chain_.key_id()) return true;
      return fail(file, n, "key",
                  "the chain is keyed with key id " + std::string(r.key_id) +
                      ", the key given has id " + chain_.key_id());
    }
    if (r.chain == "hmac-sha256") {
      return fail(file, n, "key",
                  "the chain is keyed (hmac-sha256, key id " + std::string(r.key_id) +
                      "): give its key with --key-file");
    }
    if (r.chain == "sha256") {
      return fail(file, n, "key", "the chain is not keyed (sha256), but a key was given");
    }
    return fail(file, n, "malformed", "file header names an unknown chain algorithm");
  }

  bool verify_file(const ChainInput& file, bool last_file) {
    Lines lines(file.data);
    std::string_view line;
    bool torn = false;
    for (std::uint64_t n = 1; lines.next(line, torn); ++n) {
      if (torn) {
        if (last_file) {
          report_.verdict = ChainVerdict::torn_tail;
          report_.file = file.name;
          report_.line = n;
          report_.kind = "torn";
          report_.why = "the last line is unterminated: a crash cut it short (not tampering)";
          return true;
        }
        return fail(file, n, "truncated",
                    "the file ends in the middle of a record, yet later files follow");
      }
      const Record r = parse(line);
      if (r.header && r.ok && !check_key(file, n, r)) return false;
      if (!r.ok || !links(r, n)) {
        // A line a crash left torn, which the next agent start ended with an LF and accounted
        // for in its header: skipped; the header links to the record before it.
        if (const Record next = parse(peek_line(file.data, lines.pos()));
            next.ok && next.header && next.previous_torn) {
          ++report_.torn_acknowledged;
          continue;
        }
        // The same, when the torn line happened to look whole (it was accepted): the header
        // links to the record before it.
        if (r.ok && r.header && r.previous_torn && have_before_ && last_file_ == file.name &&
            last_line_ + 1 == n && r.seq == before_seq_ + 1 &&
            r.prev == std::string_view(before_hash_.data(), before_hash_.size())) {
          ++report_.torn_acknowledged;
          --report_.records;
          last_hash_ = before_hash_;
          last_seq_ = before_seq_;
        } else if (!r.ok) {
          return fail(file, n, "malformed",
                      R"(not a chain record (no {"seq":N,"prev":"..." start): edited or inserted)");
        } else if (!check_record(file, n, r, lines.pos())) {
          return false;
        }
      }
      have_before_ = have_;
      before_hash_ = last_hash_;
      before_seq_ = last_seq_;
      if (!chain_.hash(line, last_hash_)) {
        return fail(file, n, "malformed", "cannot hash the record (out of memory)");
      }
      have_ = true;
      last_seq_ = r.seq;
      last_file_ = file.name;
      last_line_ = n;
      ++report_.records;
    }
    return true;
  }

  // The fast path: the record follows the last one (a file's first record: its header).
  [[nodiscard]] bool links(const Record& r, std::uint64_t n) const {
    if (!have_) return true;
    return r.seq == last_seq_ + 1 &&
           r.prev == std::string_view(last_hash_.data(), last_hash_.size()) && (n > 1 || r.header);
  }

  bool check_record(const ChainInput& file, std::uint64_t n, const Record& r, std::size_t next) {
    if (!have_) return true;  // the first record checked: what came before it is not given
    const std::string_view expected_prev(last_hash_.data(), last_hash_.size());
    const std::uint64_t expected = last_seq_ + 1;
    const std::string before = last_file_ + ":" + std::to_string(last_line_);
    if (n == 1) {
      // A file's first record is its header and links to the previous file's last record.
      if (!r.header) {
        return fail(file, n, "truncated",
                    "the file does not start with its audit_file_start header: its beginning "
                    "was cut off");
      }
      if (r.seq == expected && r.prev == expected_prev) return true;
      if (r.seq == 1 && r.prev == std::string_view(zero_chain_hash().data(), 64)) {
        return fail(file, n, "unlinked",
                    "the file starts a new chain (its agent found no audit file to link to); "
                    "it does not follow " +
                        before);
      }
      if (r.seq > expected) {
        return fail(file, n, "missing_file",
                    "seq jumps from " + std::to_string(last_seq_) + " (" + before + ") to " +
                        std::to_string(r.seq) +
                        " and the header does not link to it: a file is missing from the "
                        "sequence (or the end of the previous file was cut off)");
      }
      if (r.seq == expected) {
        return fail(file, n, "edited",
                    "the header's prev is not the hash of the previous file's last record (" +
                        before + "): that record was edited");
      }
      return fail(file, n, "reordered",
                  "seq " + std::to_string(r.seq) + " does not follow " + std::to_string(last_seq_) +
                      " (" + before + "): the files are not in order (oldest first)");
    }
    if (r.seq > expected) {
      if (const std::uint64_t ahead = find_seq_ahead(file.data, next, expected); ahead != 0) {
        return fail(file, n, "reordered",
                    "seq " + std::to_string(r.seq) + " where " + std::to_string(expected) +
                        " belongs; that record is at line " + std::to_string(n + ahead));
      }
      return fail(file, n, "deleted",
                  "seq jumps from " + std::to_string(last_seq_) + " to " + std::to_string(r.seq) +
                      ": " + std::to_string(r.seq - expected) + " record(s) deleted before it");
    }
    if (r.seq < expected) {
      if (leading_seq(peek_line(file.data, next)) == expected) {
        return fail(file, n, "inserted",
                    "seq " + std::to_string(r.seq) +
                        " does not belong here (the next line continues the sequence): the line "
                        "was inserted");
      }
      return fail(
          file, n, "reordered",
          "seq goes back from " + std::to_string(last_seq_) + " to " + std::to_string(r.seq));
    }
    if (r.prev == expected_prev) return true;
    if (leading_seq(peek_line(file.data, next)) == r.seq) {
      return fail(file, n, "inserted",
                  "the line does not link to the one before it and the next line has the same "
                  "seq: the line was inserted");
    }
    const bool same_file = last_file_ == file.name;
    return fail(file, same_file ? last_line_ : n, "edited",
                "hash mismatch: the record's hash is not the prev of the record after it (" +
                    file.name + ":" + std::to_string(n) + "): the record was edited" +
                    (same_file ? "" : " (it is the previous file's last record)"));
  }

  HashChain chain_;
  ChainReport report_;
  bool have_ = false;
  ChainHash last_hash_ = zero_chain_hash();
  bool have_before_ = false;  // the record before the last one (a torn line may be the last)
  ChainHash before_hash_ = zero_chain_hash();
  std::uint64_t before_seq_ = 0;
  std::uint64_t last_seq_ = 0;
  std::string last_file_;
  std::uint64_t last_line_ = 0;
};

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* p, std::size_t n) : p_(p), n_(n) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  Mapping& operator=(Mapping&&) = delete;
  ~Mapping() {
    if (p_ != nullptr) ::munmap(p_, n_);
  }
  [[nodiscard]] std::string_view view() const {
    return p_ == nullptr ? std::string_view{} : std::string_view(static_cast<char*>(p_), n_);
  }

 private:
  void* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace

std::string format_report(const ChainReport& report) {
  const std::string counts = std::to_string(report.records) + " records in " +
                             std::to_string(report.files) + " file" +
                             (report.files == 1 ? "" : "s");
  const std::string torn_note =
      report.torn_acknowledged == 0
          ? ""
          : " (" + std::to_string(report.torn_acknowledged) +
                " torn line(s) left by a crash, accounted for by the next header)";
  switch (report.verdict) {
    case ChainVerdict::intact:
      return "OK: " + counts + ", chain intact" + torn_note;
    case ChainVerdict::torn_tail:
      return "TORN: " + counts + ", chain intact" + torn_note + "; " + report.file + ":" +
             std::to_string(report.line) + ": " + report.why;
    case ChainVerdict::broken:
      break;
  }
  return "FAIL: " + report.file + ":" + std::to_string(report.line) + ": " + report.kind + ": " +
         report.why;
}

ChainReport verify_chain(const std::vector<ChainInput>& files, std::string_view key) {
  return Verifier(key).run(files);
}

Result<ChainReport> verify_chain_files(const std::vector<std::filesystem::path>& paths,
                                       std::string_view key) {
  std::vector<Mapping> maps;
  std::vector<ChainInput> inputs;
  maps.reserve(paths.size());
  for (const auto& path : paths) {
    const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    const auto cannot = [&path](const char* what) {
      return Error{ErrorCode::internal, "cannot " + std::string(what) + " " + path.string() + ": " +
                                            common::errno_text(errno)};
    };
    if (raw < 0) return cannot("open");
    const UniqueFd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return cannot("stat");
    if (!S_ISREG(st.st_mode)) {
      return Error{ErrorCode::internal, path.string() + " is not a regular file"};
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size == 0) {
      maps.emplace_back();
    } else {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
      if (p == MAP_FAILED) return cannot("map");
      ::madvise(p, size, MADV_SEQUENTIAL);
      maps.emplace_back(p, size);
    }
    inputs.push_back(ChainInput{path.string(), maps.back().view()});
  }
  return verify_chain(inputs, key);
}

}  // namespace opsagent::audit
