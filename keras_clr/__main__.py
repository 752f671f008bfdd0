import sys

from keras_clr.cli import main

sys.exit(main())
