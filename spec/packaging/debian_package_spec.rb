# frozen_string_literal: true

require "etc"
require "json"
require "open3"
require "shellwords"
require "tmpdir"

# `rake package:deb` packs the binary `rake compile` built (script/test
# compiled first) with cargo-deb; this spec checks what the package holds,
# installs it on this machine with dpkg, uses the installed command, and
# removes and purges it until nothing is left.
#
# The host's SysV limits are global and shared with other tests, and the
# package's postinst raises them, so every step that touches them (dpkg,
# setup, stats) runs in a private IPC namespace kept open for the example
# (`unshare --ipc=FILE`, then `nsenter --ipc=FILE`). There is no systemd
# here, so the units' commands run as systemd would run them: their
# ExecStart lines, as their user, with their umask, environment and runtime
# directory (and a private network namespace for the proxy's fixed metrics
# port). Installing a package is global too: a lock file keeps two runs of
# this spec from overlapping, and the spec refuses to run where the package,
# its user or its runtime directory already exist.
RSpec.describe "the shopify-events Debian package" do
  include SpecCommands

  root = SpecProcesses::ROOT
  version = ShopifyEvents::VERSION
  deb = File.join(root, "pkg", "shopify-events_#{version}-1_amd64.deb")
  let(:installed_files) do
    %w[/usr/bin/shopify-events /etc/shopify-events.toml
       /usr/lib/systemd/system/shopify-events-drain.service /usr/lib/systemd/system/shopify-events-proxy.service
       /usr/lib/sysctl.d/60-shopify-events.conf /usr/lib/sysusers.d/shopify-events.conf
       /usr/share/shopify-events/prometheus/shopify-events-alerts.yml
       /usr/share/shopify-events/grafana/shopify-events-dashboard.json]
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
      expect(File.exist?("/run/shopify-events")).to be(false), "/run/shopify-events exists; this spec creates it"
      @dir = Dir.mktmpdir("shopify-events-deb")
      ns = File.join(@dir, "ipc")
      File.write(ns, "")
      run!({}, "unshare", "--ipc=#{ns}", "true")
      @ns = ns
    end

    after do
      in_ns("dpkg", "--purge", "shopify-events") if @installed && !package_status.empty?
      FileUtils.rm_rf(@runtime_dir) if @runtime_dir
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

      env = { "SHOPIFY_EVENTS_QUEUE_KEY" => key }
      expect_drain_unit_creates_the_queue(env, key, user)
      expect_proxy_unit_takes_events_from_the_group(env, key, user)
      verify_units(installed_files.grep(/\.service\z/))

      in_ns("dpkg", "--remove", "shopify-events")
      expect(package_status).to eq("deinstall ok config-files")
      expect(installed_files.select { |path| File.exist?(path) }).to eq(["/etc/shopify-events.toml"])

      purge = in_ns("dpkg", "--purge", "shopify-events")
      expect(purge).to match(/queue #{key} \(1 messages\) stays, owned by uid #{user.uid}/)
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

    # The settings of an installed unit (the last one of each name).
    def unit(name)
      File.readlines("/usr/lib/systemd/system/#{name}.service", chomp: true)
          .grep(/\A[A-Z]\w*=/).to_h { |line| line.split("=", 2) }
    end

    # A unit's command line as systemd runs it: as its user and group, with
    # its umask, in the example's IPC namespace and a network namespace of
    # its own (loopback only), with its Environment= added to `env`.
    def unit_command(unit, key, env)
      script = 'ip link set lo up; umask "$1"; user=$2; shift 2; ' \
               'exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"'
      environment = unit.fetch("Environment", "").split.to_h { |pair| pair.split("=", 2) }
      [env.merge(environment), "nsenter", "--ipc=#{@ns}", "--", "unshare", "--net", "--", "sh", "-ec", script, "sh",
       unit.fetch("UMask", "0022"), unit.fetch("User"), *Shellwords.split(unit.fetch(key))]
    end

    # Its setup step creates the queue, owned by the package's user and group;
    # the drain itself, with the packaged config, refuses to start without brokers.
    def expect_drain_unit_creates_the_queue(env, key, user)
      drain = unit("shopify-events-drain")
      expect(run!(*unit_command(drain, "ExecStartPre", env))).to include("outcome      created")
      stats = JSON.parse(in_ns("/usr/bin/shopify-events", "stats", "--queue-key", key, "--json"))
      expect(stats.values_at("key", "capacity", "depth", "uid", "gid", "mode"))
        .to eq([key, 1 << 30, 0, user.uid, user.gid, "0660"])

      env, *command = unit_command(drain, "ExecStart", env)
      output, status = Open3.capture2e(env, "timeout", "20", *command)
      expect(status.exitstatus).to eq(1), output
      expect(output).to include('set kafka."bootstrap.servers"')
    end

    # Its socket admits the shopify-events group and nobody else (root aside),
    # and what it takes lands in the queue.
    def expect_proxy_unit_takes_events_from_the_group(env, key, user)
      proxy = unit("shopify-events-proxy")
      @runtime_dir = File.join("/run", proxy.fetch("RuntimeDirectory"))
      Dir.mkdir(@runtime_dir)
      File.chmod(proxy.fetch("RuntimeDirectoryMode").to_i(8), @runtime_dir)
      File.chown(user.uid, user.gid, @runtime_dir)
      socket = proxy.fetch("ExecStart")[%r{--listen unix://(\S+)}, 1]
      pid = spawn_child(*unit_command(proxy, "ExecStart", env), log: File.join(@dir, "proxy.log"))
      wait_for_socket(socket, pid)
      expect([File.stat(socket).mode & 0o777, File.stat(socket).gid]).to eq([0o660, user.gid])

      expect(emit_through(socket, "--groups=#{user.gid}")).to eq("flushed")
      expect(emit_through(socket, "--clear-groups")).to eq("not flushed")
      expect(JSON.parse(in_ns("/usr/bin/shopify-events", "stats", "--queue-key", key, "--json"))["depth"]).to eq(1)
      expect(stop_child(pid)).to be_success
    end

    def wait_for_socket(path, pid)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 15
      until File.socket?(path)
        raise "the proxy exited:\n#{File.read(File.join(@dir, "proxy.log"))}" if Process.wait(pid, Process::WNOHANG)
        raise "no #{path} after 15 s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.05
      end
    end

    # Emits one event as the user nobody, with the supplementary groups
    # `groups` sets, as an app in a container would; "flushed" once the proxy acked it.
    def emit_through(socket, groups)
      script = 'require "shopify_events"; ShopifyEvents.emit("deb.proxy", { ok: true }); ' \
               'print ShopifyEvents.flush(2) ? "flushed" : "not flushed"'
      env = { "SHOPIFY_EVENTS_TRANSPORT" => "socket", "SHOPIFY_EVENTS_PROXY" => "unix://#{socket}",
              "SHOPIFY_EVENTS_FLUSH_TIMEOUT" => "1" }
      run!(env, "setpriv", "--reuid=nobody", "--regid=nogroup", groups, "--",
           RbConfig.ruby, "-I", File.join(SpecProcesses::ROOT, "lib"), "-e", script, chdir: "/")
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
