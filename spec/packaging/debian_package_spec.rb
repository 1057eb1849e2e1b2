# frozen_string_literal: true

require "etc"
require "json"
require "open3"
require "tmpdir"

# `rake package:deb` packs the binary `rake compile` built (script/test
# compiled first) with cargo-deb; this spec checks what the package holds,
# installs it on this machine with dpkg, uses the installed command, and
# removes and purges it until nothing is left.
#
# The host's SysV limits are global and shared with other tests, and the
# package's postinst raises them, so every step that touches them (dpkg,
# setup, stats) runs in a private IPC namespace kept open for the example
# (`unshare --ipc=FILE`, then `nsenter --ipc=FILE`). Installing a package is
# global too: a lock file keeps two runs of this spec from overlapping, and
# the spec refuses to run where the package or its user already exist.
RSpec.describe "the shopify-events Debian package" do
  include SpecCommands

  root = SpecProcesses::ROOT
  version = ShopifyEvents::VERSION
  deb = File.join(root, "pkg", "shopify-events_#{version}-1_amd64.deb")
  let(:installed_files) do
    %w[/usr/bin/shopify-events /etc/shopify-events.toml
       /usr/lib/systemd/system/shopify-events-drain.service /usr/lib/systemd/system/shopify-events-proxy.service
       /usr/lib/sysctl.d/60-shopify-events.conf /usr/lib/sysusers.d/shopify-events.conf]
  end

  def package_status
    `dpkg-query -W -f='${Status}' shopify-events 2>/dev/null`
  end

  def user?(name)
    !Etc.getpwnam(name).nil?
  rescue ArgumentError
    false
  end

  # Runs a command in the example's IPC namespace.
  def in_ns(*command, env: {})
    run!(env, "nsenter", "--ipc=#{@ns}", "--", *command)
  end

  before(:context) do
    skip "installs a package: needs root and dpkg" unless Process.uid.zero? && system("command -v dpkg >/dev/null")
    run!({}, "rake", "package:deb", chdir: root)
  end

  around do |example|
    File.open(File.join(Dir.tmpdir, "shopify-events-debian-package-spec.lock"), File::CREAT | File::RDWR) do |lock|
      lock.flock(File::LOCK_EX)
      example.run
    end
  end

  it "holds the binary, both units, the sysctls, the user, a conffile and its maintainer scripts" do
    listing = run!({}, "dpkg-deb", "--contents", deb)
    installed_files.each { |path| expect(listing).to include(".#{path}\n") }
    expect(listing).to match(%r{^-rwxr-xr-x 0/0 .* \./usr/bin/shopify-events$})

    info = run!({}, "dpkg-deb", "--info", deb)
    expect(info).to include("Package: shopify-events", "Version: #{version}-1", "Architecture: amd64")
    expect(info[/^ Depends: .*/]).to include("libc6", "passwd", "systemd | systemd-standalone-sysusers")

    Dir.mktmpdir("shopify-events-deb") do |control|
      run!({}, "dpkg-deb", "--control", deb, control)
      expect(File.read(File.join(control, "conffiles")).split).to eq(["/etc/shopify-events.toml"])
      scripts = %w[postinst prerm postrm].to_h { |name| [name, File.read(File.join(control, name))] }
      scripts.each_key { |name| run!({}, "sh", "-n", File.join(control, name)) }
      expect(scripts["postinst"]).to include("systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} shopify-events.conf",
                                             "deb-systemd-helper update-state shopify-events-drain.service",
                                             "deb-systemd-helper update-state shopify-events-proxy.service",
                                             "raise_sysv_limits")
      # Registered, never enabled or started by the install (the drain needs
      # brokers first): enabled again only where an upgrade finds it enabled.
      expect(scripts["postinst"]).not_to include("deb-systemd-invoke start")
      expect(scripts["postinst"]).to include("if deb-systemd-helper debian-installed shopify-events-drain.service",
                                             "if deb-systemd-helper debian-installed shopify-events-proxy.service")
      expect(scripts["prerm"]).to include("deb-systemd-invoke stop shopify-events-drain.service",
                                          "deb-systemd-invoke stop shopify-events-proxy.service")
      expect(scripts["postrm"]).to include("deb-systemd-helper purge", "rm -rf /var/lib/shopify-events",
                                           "userdel shopify-events", "groupdel shopify-events")
    end
  end

  context "installed with dpkg" do
    before do
      expect(package_status).to eq(""), "shopify-events is already installed here (#{package_status}); " \
                                        "this spec installs and purges it: run `dpkg --purge shopify-events` first"
      expect(user?("shopify-events")).to be(false), "a shopify-events user exists; this spec's purge would delete it"
      @dir = Dir.mktmpdir("shopify-events-deb")
      ns = File.join(@dir, "ipc")
      File.write(ns, "")
      run!({}, "unshare", "--ipc=#{ns}", "true")
      @ns = ns
    end

    after do
      in_ns("dpkg", "--purge", "shopify-events") if @installed && !package_status.empty?
      run!({}, "umount", @ns) if @ns # the namespace, and any queue left in it, goes away
      FileUtils.rm_rf(@dir) if @dir
    end

    it "creates its user, raises the limits, runs setup and stats from the installed paths, purges to nothing" do
      host_limits = sysv_limits
      key = format("0x%08x", 0x5345_0000 | (Process.pid & 0xffff))

      @installed = true
      output = in_ns("dpkg", "--install", deb)
      expect(output).to include("raised kernel.msgmax from 8192 to 65536",
                                "raised kernel.msgmnb from 16384 to 1073741824")
      expect(package_status).to eq("install ok installed")
      expect(sysv_limits).to eq(host_limits)
      expect(Dir.glob("/etc/systemd/system/*.wants/shopify-events-*")).to be_empty
      user = Etc.getpwnam("shopify-events")
      expect_user_and_state_dir(user)

      expect_setup_and_stats(key, user)
      expect_drain_refused_without_brokers(key)
      verify_units(installed_files.grep(/\.service\z/))

      in_ns("dpkg", "--remove", "shopify-events")
      expect(package_status).to eq("deinstall ok config-files")
      expect(installed_files.select { |path| File.exist?(path) }).to eq(["/etc/shopify-events.toml"])

      purge = in_ns("dpkg", "--purge", "shopify-events")
      expect(purge).to match(/queue #{key} \(0 messages\) stays, owned by uid #{user.uid}/)
      expect_nothing_left
      in_ns("ipcrm", "-Q", key)
    end

    def sysv_limits
      %w[msgmax msgmnb].map { |name| File.read("/proc/sys/kernel/#{name}") }
    end

    def expect_user_and_state_dir(user)
      expect([user.dir, user.shell]).to eq(["/var/lib/shopify-events", "/usr/sbin/nologin"])
      expect(user.uid).to be < 1000
      state = File.stat("/var/lib/shopify-events")
      expect([state.uid, state.gid, state.mode & 0o777]).to eq([user.uid, user.gid, 0o750])
    end

    # As the drain unit runs it: the queue belongs to the package's user and group.
    def expect_setup_and_stats(key, user)
      setup = in_ns("runuser", "-u", "shopify-events", "--", "/usr/bin/shopify-events", "setup",
                    "--queue-key", key, "--capacity", "1GiB")
      expect(setup).to include("outcome      created")
      stats = JSON.parse(in_ns("/usr/bin/shopify-events", "stats", "--queue-key", key, "--json"))
      expect(stats.values_at("key", "capacity", "depth", "uid", "gid", "mode"))
        .to eq([key, 1 << 30, 0, user.uid, user.gid, "0660"])
    end

    # The packaged config parses, and keeps the drain from starting until brokers are set.
    def expect_drain_refused_without_brokers(key)
      output, status = Open3.capture2e({ "SHOPIFY_EVENTS_QUEUE_KEY" => key }, "timeout", "20",
                                       "nsenter", "--ipc=#{@ns}", "--", "runuser", "-u", "shopify-events", "--",
                                       "/usr/bin/shopify-events", "drain", "--config", "/etc/shopify-events.toml")
      expect(status.exitstatus).to eq(1)
      expect(output).to include('set kafka."bootstrap.servers"')
    end

    def expect_nothing_left
      expect(package_status).to eq("")
      expect(installed_files.select { |path| File.exist?(path) }).to be_empty
      expect(File.exist?("/var/lib/shopify-events")).to be(false)
      expect(user?("shopify-events")).to be(false)
      expect { Etc.getgrnam("shopify-events") }.to raise_error(ArgumentError)
      # Nor any enable, mask or state link of the units.
      expect(Dir.glob(%w[/etc/systemd/system/**/shopify-events*
                         /var/lib/systemd/deb-systemd-helper-*/**/shopify-events*])).to be_empty
    end

    # systemd-analyze checks the units' syntax, directives and paths without
    # a running systemd (this machine has none: no unit is ever started).
    def verify_units(units)
      output = run!({ "SYSTEMD_LOG_LEVEL" => "warning" }, "systemd-analyze", "verify", *units)
      expect(output).to eq("")
    end
  end
end
