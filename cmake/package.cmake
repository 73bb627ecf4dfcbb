# The Debian package: `cpack -G DEB` in a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr (.ci/package does both). It installs tlbot and
# tlbot-wsgateway, the systemd units, /etc/tlbot/tlbot.yaml (the commented
# example, a conffile), the bank-holidays data, the man page tlbot(8)
# written by `tlbot --man` from the same option table as --help, the alert
# rules and the data-protection page; postinst creates the tlbot system user.

# tlbot(8), generated from bot/main.c's option table by the binary itself
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/tlbot.8.gz
  COMMAND $<TARGET_FILE:tlbot> --man > ${CMAKE_BINARY_DIR}/tlbot.8
  COMMAND gzip -9nf ${CMAKE_BINARY_DIR}/tlbot.8
  DEPENDS tlbot VERBATIM)
add_custom_target(manpage ALL DEPENDS ${CMAKE_BINARY_DIR}/tlbot.8.gz)
install(FILES ${CMAKE_BINARY_DIR}/tlbot.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)

# the units, pointing at the installed binaries
foreach(unit tlbot.service tlbot-wsgateway.service)
  file(READ ${CMAKE_SOURCE_DIR}/config/${unit} text)
  string(REPLACE "/usr/local/bin/" "${CMAKE_INSTALL_FULL_BINDIR}/" text "${text}")
  file(WRITE ${CMAKE_BINARY_DIR}/pkg/${unit} "${text}")
  install(FILES ${CMAKE_BINARY_DIR}/pkg/${unit} DESTINATION lib/systemd/system)
endforeach()
install(FILES config/tlbot.example.yaml DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/tlbot
  RENAME tlbot.yaml PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES config/tlbot-alerts.yml docs/data-protection.md README.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tlbot)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "tlbot maintainers <tlbot@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Matrix bot for test-and-learn teams")
set(CPACK_PACKAGE_DESCRIPTION "tlbot records challenges, experiments and stand-ups for\n"
  " teams coordinating in Matrix rooms, runs the daily stand-up and sends\n"
  " reminders. Includes tlbot-wsgateway, a WebSocket stream gateway.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)  # debug info stays in the build tree
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd, tzdata, ca-certificates")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
file(WRITE ${CMAKE_BINARY_DIR}/pkg/conffiles "${CMAKE_INSTALL_FULL_SYSCONFDIR}/tlbot/tlbot.yaml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/cmake/debian/postinst
  ${CMAKE_SOURCE_DIR}/cmake/debian/prerm
  ${CMAKE_SOURCE_DIR}/cmake/debian/postrm
  ${CMAKE_BINARY_DIR}/pkg/conffiles)
include(CPack)
