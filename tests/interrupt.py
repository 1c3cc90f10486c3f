"""Stand-ins for a process that dies mid-run, for the kill-and-resume tests."""


class Killed(Exception):
    """Stands for the process dying (between two epochs, or between two runs of a study)."""


def stop_before(defense, epoch_to_stop):
    """The same training defense, but the run dies when epoch ``epoch_to_stop`` begins."""
    start_epoch = defense.start_epoch

    def start(model, data, epoch, epochs):
        if epoch == epoch_to_stop:
            raise Killed
        start_epoch(model, data, epoch, epochs)

    defense.start_epoch = start
    return defense
