#include "agent/exec/safe_open.hpp"

#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace opsagent::exec {
namespace {

namespace fs = std::filesystem;
using Opener = std::function<Result<UniqueFd>(const fs::path&, const fs::path&)>;

// Every behaviour must hold for openat2 and for the walk used where openat2 is missing.
struct NamedOpener {
  const char* name;
  Opener open;
};
const std::vector<NamedOpener>& openers() {
  static const std::vector<NamedOpener> kOpeners{
      {"openat2", [](const fs::path& r, const fs::path& p) { return open_beneath(r, p); }},
      {"walk",
       [](const fs::path& r, const fs::path& p) { return detail::open_beneath_by_walk(r, p); }},
  };
  return kOpeners;
}

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string read_all(int fd) {
  std::string out;
  char buf[256];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

// root/            the allowed directory
//   ok.log         regular file
//   sub/inner.log  regular file one level down
// outside/canary   must never be readable through root
class SafeOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "safe_open_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    root_ = base_ / "root";
    fs::create_directories(root_ / "sub");
    fs::create_directories(base_ / "outside");
    write_file(root_ / "ok.log", "hello\n");
    write_file(root_ / "sub" / "inner.log", "inner\n");
    write_file(base_ / "outside" / "canary", "CANARY\n");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  void expect_error(const fs::path& relative, ErrorCode code, const std::string& message = {}) {
    for (const auto& opener : openers()) {
      SCOPED_TRACE(opener.name);
      auto r = opener.open(root_, relative);
      ASSERT_FALSE(r.ok()) << relative;
      EXPECT_EQ(r.error().code, code) << r.error().message;
      if (!message.empty()) {
        EXPECT_EQ(r.error().message, message);
      }
    }
  }

  fs::path base_;
  fs::path root_;
};

TEST_F(SafeOpen, OpensARegularFileBeneathTheRoot) {
  for (const auto& opener : openers()) {
    SCOPED_TRACE(opener.name);
    auto top = opener.open(root_, "ok.log");
    ASSERT_TRUE(top.ok()) << top.error().message;
    EXPECT_EQ(read_all(top->get()), "hello\n");
    auto nested = opener.open(root_, "sub/inner.log");
    ASSERT_TRUE(nested.ok()) << nested.error().message;
    EXPECT_EQ(read_all(nested->get()), "inner\n");
    EXPECT_NE(::fcntl(nested->get(), F_GETFD) & FD_CLOEXEC, 0);
  }
}

TEST_F(SafeOpen, DeniesASymlinkPointingOutOfTheRoot) {
  fs::create_symlink(base_ / "outside" / "canary", root_ / "abs");
  fs::create_symlink("../outside/canary", root_ / "rel");
  expect_error("abs", ErrorCode::denied, "symbolic links are not followed");
  expect_error("rel", ErrorCode::denied, "symbolic links are not followed");
}

TEST_F(SafeOpen, DeniesASymlinkEvenWhenItStaysInsideTheRoot) {
  fs::create_symlink("ok.log", root_ / "alias.log");
  expect_error("alias.log", ErrorCode::denied, "symbolic links are not followed");
}

TEST_F(SafeOpen, DeniesASymlinkedDirectoryComponent) {
  fs::create_directory_symlink(base_ / "outside", root_ / "linkdir");
  fs::create_directory_symlink("sub", root_ / "samedir");
  expect_error("linkdir/canary", ErrorCode::denied, "symbolic links are not followed");
  expect_error("samedir/inner.log", ErrorCode::denied, "symbolic links are not followed");
}

TEST_F(SafeOpen, DeniesASymlinkLoop) {
  fs::create_symlink("loop2", root_ / "loop1");
  fs::create_symlink("loop1", root_ / "loop2");
  expect_error("loop1", ErrorCode::denied);
}

TEST_F(SafeOpen, RejectsPathsThatLeaveOrAreNotCanonical) {
  expect_error("..", ErrorCode::denied, "path escapes its root");
  expect_error("../outside/canary", ErrorCode::denied, "path escapes its root");
  expect_error("sub/../../outside/canary", ErrorCode::denied, "path escapes its root");
  expect_error("sub/../ok.log", ErrorCode::denied, "path escapes its root");
  expect_error(base_ / "outside" / "canary", ErrorCode::denied, "path escapes its root");
  expect_error("./ok.log", ErrorCode::denied);
  expect_error("sub//inner.log", ErrorCode::denied);
  expect_error("sub/", ErrorCode::denied);
  expect_error("%2e%2e/outside/canary", ErrorCode::notfound);  // never decoded
  expect_error(std::string("ok.log\0x", 8), ErrorCode::usage);
  expect_error("", ErrorCode::usage);
  expect_error(std::string(PATH_MAX + 1, 'a'), ErrorCode::denied, "path is too long");
}

TEST_F(SafeOpen, DeniesAFifoWithoutBlocking) {
  const fs::path fifo = root_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const auto& opener : openers()) {
    SCOPED_TRACE(opener.name);
    std::promise<Result<UniqueFd>> done;
    auto result = done.get_future();
    std::thread worker([&] { done.set_value(opener.open(root_, "fifo")); });
    if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      // Unblock the stuck reader by appearing as a writer, so the test fails instead of hanging.
      UniqueFd writer(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
      worker.join();
      FAIL() << "opening a FIFO blocked";
    }
    worker.join();
    auto r = result.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::denied);
    EXPECT_EQ(r.error().message, "not a regular file");
  }
}

TEST_F(SafeOpen, DeniesADirectory) { expect_error("sub", ErrorCode::denied, "not a regular file"); }

TEST_F(SafeOpen, DeniesAFileWithSeveralHardLinks) {
  fs::create_hard_link(root_ / "ok.log", base_ / "outside" / "second-name");
  expect_error("ok.log", ErrorCode::denied, "file has several hard links");
}

TEST_F(SafeOpen, ReportsAMissingFileAsNotFound) {
  expect_error("missing.log", ErrorCode::notfound,
               "no such file: " + (root_ / "missing.log").string());
  expect_error("nodir/x.log", ErrorCode::notfound);
  expect_error("ok.log/x", ErrorCode::notfound);  // a file used as a directory
}

TEST_F(SafeOpen, ReportsAMissingRootAsNotFound) {
  auto r = open_beneath(base_ / "no-root", "ok.log");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::notfound);
}

TEST_F(SafeOpen, DeniesProcMagicLinksAndPseudoFiles) {
  UniqueFd target(::open((root_ / "ok.log").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(target.valid());
  for (const auto& opener : openers()) {
    SCOPED_TRACE(opener.name);
    auto magic = opener.open("/proc/self", "fd/" + std::to_string(target.get()));
    ASSERT_FALSE(magic.ok());
    EXPECT_EQ(magic.error().code, ErrorCode::denied);
    // S_ISREG and a link count of 1, yet the agent's own environment: refused by file system.
    auto environ_file = opener.open("/proc/self", "environ");
    ASSERT_FALSE(environ_file.ok());
    EXPECT_EQ(environ_file.error().code, ErrorCode::denied);
  }
}

TEST(SafeOpenLogFile, OpensARegularFileByAbsolutePath) {
  char tmpl[] = "/tmp/log_file_XXXXXX";
  UniqueFd fd(::mkstemp(tmpl));
  ASSERT_TRUE(fd.valid());
  auto r = open_log_file(tmpl);
  ::unlink(tmpl);
  ASSERT_TRUE(r.ok()) << r.error().message;
}

TEST(SafeOpenLogFile, RefusesASymlinkADeviceAndARelativePath) {
  const fs::path link = fs::temp_directory_path() / ("log_link_" + std::to_string(::getpid()));
  fs::create_symlink("/etc/hostname", link);
  auto via_link = open_log_file(link);
  fs::remove(link);
  ASSERT_FALSE(via_link.ok());
  EXPECT_EQ(via_link.error().code, ErrorCode::denied);

  auto device = open_log_file("/dev/zero");
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.error().message, "not a regular file");

  auto relative = open_log_file("var/log/syslog");
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().code, ErrorCode::usage);

  auto missing = open_log_file("/nonexistent/opsagent.log");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::notfound);
}

// SECURITY-MATRIX I7: the root itself, and every directory above it, is not followed through a
// symbolic link (the policy names a directory, not whatever a link there points to today).
TEST_F(SafeOpen, I7_RefusesARootThatIsOrPassesThroughASymlink) {
  fs::create_directory_symlink(base_ / "outside", base_ / "linked-root");
  fs::create_directory_symlink(base_, base_ / "linked-base");
  for (const auto& opener : openers()) {
    SCOPED_TRACE(opener.name);
    for (const fs::path& root : {base_ / "linked-root", base_ / "linked-base" / "root"}) {
      auto r = opener.open(root, "canary");
      ASSERT_FALSE(r.ok()) << root;
      EXPECT_EQ(r.error().code, ErrorCode::denied);
      EXPECT_EQ(r.error().message,
                "the root " + root.string() + " is or passes through a symbolic link; refusing");
    }
    auto real = opener.open(root_, "ok.log");  // the same file by its real path still opens
    ASSERT_TRUE(real.ok()) << real.error().message;
    auto file_root = opener.open(root_ / "ok.log", "x");  // a file is not a directory
    ASSERT_FALSE(file_root.ok());
    EXPECT_EQ(file_root.error().code, ErrorCode::notfound);
  }
}

TEST(SafeOpenLogFile, I7_RefusesALogWithSeveralHardLinks) {
  char tmpl[] = "/tmp/log_file_XXXXXX";
  UniqueFd fd(::mkstemp(tmpl));
  ASSERT_TRUE(fd.valid());
  const fs::path second = std::string(tmpl) + ".second";
  fs::create_hard_link(tmpl, second);
  auto r = open_log_file(tmpl);
  fs::remove(second);
  auto single = open_log_file(tmpl);
  ::unlink(tmpl);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::denied);
  EXPECT_EQ(r.error().message, "file has several hard links");
  EXPECT_TRUE(single.ok()) << single.error().message;
}

}  // namespace
}  // namespace opsagent::exec
