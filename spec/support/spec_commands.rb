# frozen_string_literal: true

require "open3"

# Commands a spec runs to completion (build, install, inspect): the output
# on success, an error carrying the command and its output otherwise.
module SpecCommands
  def run!(env, *command, chdir: SpecProcesses::ROOT)
    output, status = Open3.capture2e(env, *command, chdir: chdir)
    raise "#{command.join(" ")} failed (#{status}):\n#{output}" unless status.success?

    output
  end
end
