"""The assembly: the application graph and the command line, standing above every other layer."""
