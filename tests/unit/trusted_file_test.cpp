// The one trust rule for the files the agent relies on (SECURITY-MATRIX I4).

#include "agent/common/trusted_file.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace opsagent {
namespace {

namespace fs = std::filesystem;

class TrustedFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "trusted_file_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    dir_ = base_ / "etc";
    fs::create_directory(dir_);
    ::chmod(dir_.c_str(), 0755);
    file_ = dir_ / "ca.crt";
    std::ofstream(file_) << "x";
    ::chmod(file_.c_str(), 0644);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  std::string problem(const fs::path& p) {
    const Status s = check_trusted_file(p);
    return s ? std::string() : s.error().message;
  }

  fs::path base_;
  fs::path dir_;
  fs::path file_;
};

TEST_F(TrustedFile, AcceptsAFileAndDirectoryOnlyTheOwnerMayWrite) {
  EXPECT_EQ(problem(file_), "");
  ::chmod(file_.c_str(), 0400);
  EXPECT_EQ(problem(file_), "");
}

TEST_F(TrustedFile, RefusesAFileGroupOrOthersMayWrite) {
  for (const mode_t mode : {0664, 0646, 0666, 0777}) {
    ::chmod(file_.c_str(), mode);
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode));
    EXPECT_EQ(problem(file_), file_.string() + ": mode " + text +
                                  " lets group or others write it; refusing (chmod go-w)");
  }
}

TEST_F(TrustedFile, RefusesADirectoryGroupOrOthersMayWriteUnlessItIsSticky) {
  ::chmod(dir_.c_str(), 0775);
  EXPECT_EQ(problem(file_), dir_.string() +
                                ": directory mode 0775 lets group or others replace the files in "
                                "it; refusing (chmod go-w)");
  ::chmod(dir_.c_str(), 01777);  // like /tmp: nobody else can replace our entry
  EXPECT_EQ(problem(file_), "");
}

TEST_F(TrustedFile, ChecksTheDirectoryOfTheTargetOfASymlinkToo) {
  const fs::path loose = base_ / "loose";
  fs::create_directory(loose);
  std::ofstream(loose / "real.crt") << "x";
  ::chmod((loose / "real.crt").c_str(), 0644);
  ::chmod(loose.c_str(), 0777);
  fs::create_symlink(loose / "real.crt", dir_ / "link.crt");
  EXPECT_NE(problem(dir_ / "link.crt").find(loose.string() + ": directory mode 0777"),
            std::string::npos);
  ::chmod(loose.c_str(), 0755);
  EXPECT_EQ(problem(dir_ / "link.crt"), "");
}

TEST_F(TrustedFile, ReportsAMissingFileAsNotFoundAndChecksOnlyTheDirectoryOfOneToBeCreated) {
  const Status missing = check_trusted_file(dir_ / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::notfound);
  EXPECT_TRUE(check_trusted_directory_of(dir_ / "missing").ok());
  ::chmod(dir_.c_str(), 0777);
  EXPECT_FALSE(check_trusted_directory_of(dir_ / "missing").ok());
}

TEST_F(TrustedFile, RefusesAFileOrDirectoryOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown to another user needs root";
  constexpr uid_t kNobody = 65534;
  ASSERT_EQ(::chown(file_.c_str(), kNobody, static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(problem(file_),
            file_.string() + ": owned by uid 65534, not by root or the agent's user; refusing");
  ASSERT_EQ(::chown(file_.c_str(), 0, static_cast<gid_t>(-1)), 0);
  ASSERT_EQ(::chown(dir_.c_str(), kNobody, static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(problem(file_),
            dir_.string() + ": owned by uid 65534, not by root or the agent's user; refusing");
}

}  // namespace
}  // namespace opsagent
