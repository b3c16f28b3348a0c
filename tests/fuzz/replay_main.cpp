// Runs a fuzz target over committed inputs without libFuzzer, so the normal GCC build and ctest
// replay every seed and every past finding. Usage: fuzz_X_replay DIR_OR_FILE...
// Exits non-zero when no input was found (a missing corpus must not pass silently); a broken
// property aborts inside the target.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::vector<std::filesystem::path> inputs_of(const std::filesystem::path& arg) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  if (std::filesystem::is_directory(arg, ec)) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(arg, ec)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
  } else if (std::filesystem::is_regular_file(arg, ec)) {
    files.push_back(arg);
  }
  // Directory order is arbitrary; a fixed order makes a failure reproducible.
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& file : inputs_of(argv[i])) {
      std::ifstream in(file, std::ios::binary);
      const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      if (!in.good() && !in.eof()) {
        std::cerr << "replay: cannot read " << file << '\n';
        return 1;
      }
      // A copy in its own allocation, as libFuzzer does, so ASan sees reads past the end.
      std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
      std::cerr << "replay: " << file.string() << " (" << data.size() << " bytes)\n";
      LLVMFuzzerTestOneInput(data.data(), data.size());
      ++runs;
    }
  }
  if (runs == 0) {
    std::cerr << "replay: no inputs found\n";
    return 1;
  }
  std::cout << "replay: " << runs << " inputs, no property violated\n";
  return 0;
}
