# The Debian package: `cpack -G DEB` in a build tree (scripts/package.sh does it all) makes
# opsagent_<version>_amd64.deb with the binaries, man pages, the systemd unit, a logrotate file,
# the example configuration and policy under /etc/opsagent (conffiles) and maintainer scripts
# that create the opsagent system user and /var/log/opsagent.

include(GNUInstallDirs)
set(OPSAGENT_PKG_DIR ${PROJECT_SOURCE_DIR}/packaging)

# Man pages are written in roff (docs/man), so no pandoc is needed; compressed as Debian wants.
find_program(GZIP_PROGRAM gzip REQUIRED)
foreach(page opsagent.8 opsctl.1)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/man/${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND ${GZIP_PROGRAM} -9nc ${PROJECT_SOURCE_DIR}/docs/man/${page} > ${PROJECT_BINARY_DIR}/man/${page}.gz
    DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/${page} VERBATIM)
  list(APPEND OPSAGENT_MAN_PAGES ${PROJECT_BINARY_DIR}/man/${page}.gz)
  install(FILES ${PROJECT_BINARY_DIR}/man/${page}.gz DESTINATION share/man/man${section})
endforeach()
add_custom_target(opsagent_man ALL DEPENDS ${OPSAGENT_MAN_PAGES})

# Absolute destinations: these belong where the system looks, whatever the prefix.
install(FILES ${OPSAGENT_PKG_DIR}/opsagent.service DESTINATION /lib/systemd/system)
install(FILES ${OPSAGENT_PKG_DIR}/agent.yaml DESTINATION /etc/opsagent PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${PROJECT_SOURCE_DIR}/config/policy.yaml DESTINATION /etc/opsagent PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${OPSAGENT_PKG_DIR}/logrotate DESTINATION /etc/logrotate.d RENAME opsagent)
install(FILES README.md SECURITY.md docs/configuration.md docs/policy.md docs/protocol.md
  docs/opsctl.md docs/audit.md docs/pki.md DESTINATION share/doc/opsagent OPTIONAL)

# conffiles: dpkg keeps an operator's edits on upgrade and asks before replacing them.
file(WRITE ${PROJECT_BINARY_DIR}/deb/conffiles
  "/etc/opsagent/agent.yaml\n/etc/opsagent/policy.yaml\n/etc/logrotate.d/opsagent\n")

set(CPACK_PACKAGE_NAME opsagent)
set(CPACK_PACKAGE_VENDOR "opsagent")
set(CPACK_PACKAGE_CONTACT "opsagent maintainers <dev@opsagent.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "remote operations agent over mutual TLS with a YAML policy")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # opsagent_<version>_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "remote operations agent over mutual TLS with a YAML policy\n A daemon that authorises every command of a client certificate against a\n default-deny policy, runs fixed commands without a shell and writes a JSON\n audit trail; opsctl drives it on one host or a fleet.")
# dpkg-shlibdeps computes the library dependencies from the binaries.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "logrotate, openssl")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_BINARY_DIR}/deb/conffiles
  ${OPSAGENT_PKG_DIR}/postinst ${OPSAGENT_PKG_DIR}/prerm ${OPSAGENT_PKG_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
